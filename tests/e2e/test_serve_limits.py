"""`podium serve` takes its limits as `--limit NAME=VALUE` or PODIUM_NAME
variables: a bad one ends the start with one line and exit 2, a good one is
what the server enforces."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from podium.testing import ServerProcess
from podium.testing.process import CLI

StartServing = Callable[..., ServerProcess]
OneLineError = Callable[..., None]
HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello.yaml"  # two steps

# A failed start exits at once; this only bounds a hang.
EXIT_CEILING = 30.0


def serve(
    db: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "serve", "--db", str(db), "--address", "127.0.0.1:0", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=EXIT_CEILING,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_a_bad_limit_value_is_one_line_and_exit_2(
    tmp_path: Path, one_line_error: OneLineError
) -> None:
    result = serve(tmp_path / "podium.db", "--limit", "max_steps=0")
    one_line_error(result, "error: limit max_steps must be an integer from 1 to")
    assert result.returncode == 2
    assert not (tmp_path / "podium.db").exists()  # nothing was started


def test_an_unknown_limit_is_one_line_and_exit_2(
    tmp_path: Path, one_line_error: OneLineError
) -> None:
    result = serve(tmp_path / "podium.db", "--limit", "max_stepz=5")
    one_line_error(result, "unknown limit 'max_stepz'", "max_steps")
    assert result.returncode == 2


def test_a_limit_without_a_value_is_a_usage_error(
    tmp_path: Path, one_line_error: OneLineError
) -> None:
    result = serve(tmp_path / "podium.db", "--limit", "max_steps")
    one_line_error(result, "expected NAME=VALUE")
    assert result.returncode == 2


def test_a_bad_limit_variable_is_one_line_and_exit_2(
    tmp_path: Path, one_line_error: OneLineError
) -> None:
    result = serve(tmp_path / "podium.db", env={"PODIUM_MAX_OUTPUT_DEPTH": "1000"})
    one_line_error(result, "error: PODIUM_MAX_OUTPUT_DEPTH must be an integer from 1 to 26")
    assert result.returncode == 2


def test_the_servers_limits_are_the_flags_over_the_variables(
    start_serving: StartServing, one_line_error: OneLineError
) -> None:
    # The variable alone would allow the two steps of hello.yaml (the
    # variables themselves are tested in-process: tests/api/test_limits.py).
    served = start_serving(args=("--limit", "max_steps=1"), env={"PODIUM_MAX_STEPS": "1000"})
    refused = served.cli("workflows", "validate", "-f", str(HELLO))
    one_line_error(refused, "spec.steps", "at most 1 steps (max_steps), got 2")
    assert "limits: max_steps=1" in served.log_path.read_text()
