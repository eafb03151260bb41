"""The `podium` CLI against a real `podium serve` process: the happy path
(apply, start with live progress, get, list), error paths (one line, non-zero
exit, no traceback), a broken plugin that does not take the server down, and
graceful shutdown on SIGTERM leaving unfinished runs resumable."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import grpc

from podium.testing import ServerProcess, Stubs, step_reaches
from podium.v1 import run_pb2

# The fixtures of tests/e2e/conftest.py.
StartServing = Callable[..., ServerProcess]
OneLineError = Callable[..., None]


def test_apply_start_watch_get_and_list(served: ServerProcess) -> None:
    applied = served.cli("workflows", "apply", "-f", "examples/hello.yaml")
    assert applied.returncode == 0, applied.stderr
    assert "workflows/hello" in applied.stdout

    started = served.cli("runs", "start", "hello", "--input", '{"name": "Ada"}', "--watch")
    assert started.returncode == 0, started.stderr
    assert "RUN_SUCCEEDED" in started.stdout
    assert "HELLO, ADA!" in started.stdout  # the run's output, shouted by the transform step

    listed = served.cli("runs", "list", "--workflow", "hello", "--json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    runs = runs.get("runs", runs) if isinstance(runs, dict) else runs
    assert len(runs) == 1
    assert runs[0]["state"] == "RUN_STATE_SUCCEEDED"

    fetched = served.cli("runs", "get", runs[0]["name"], "--json")
    assert fetched.returncode == 0, fetched.stderr
    run = json.loads(fetched.stdout)
    assert run["output"] == {"message": "HELLO, ADA!"}
    assert [step["state"] for step in run["steps"]] == ["STEP_STATE_SUCCEEDED"] * 2


def test_invalid_workflow_is_one_line_with_the_field(
    served: ServerProcess, tmp_path: Path, one_line_error: OneLineError
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        textwrap.dedent(
            """
            workflow_id: bad
            spec:
              steps:
                - id: a
                  agent: no_such_agent
            """
        )
    )
    result = served.cli("workflows", "apply", "-f", str(bad))
    one_line_error(result, "INVALID_ARGUMENT", "spec.steps[0].agent", "no_such_agent")
    assert served.cli("workflows", "get", "bad").returncode != 0  # nothing was stored


def test_unknown_run_and_bad_input_are_one_line_errors(
    served: ServerProcess, one_line_error: OneLineError
) -> None:
    one_line_error(served.cli("runs", "get", "nope"), "NOT_FOUND")
    one_line_error(served.cli("runs", "start", "hello", "--input", "{not json"))


def test_a_broken_plugin_is_listed_and_the_server_serves(
    tmp_path: Path, start_serving: StartServing
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "broken_plugin.py").write_text("raise ImportError('missing dependency xyz')\n")
    dist_info = site / "broken_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n"
    )
    (dist_info / "entry_points.txt").write_text("[podium]\nbroken = broken_plugin\n")
    pythonpath = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH", "")]))
    running = start_serving(env={"PYTHONPATH": pythonpath})
    try:
        listed = running.cli("plugins", "--json")
        assert listed.returncode == 0, listed.stderr
        plugins = {p["name"]: p for p in json.loads(listed.stdout)}
        assert plugins["broken"]["status"] == "failed"
        assert "missing dependency xyz" in plugins["broken"]["error"]
        assert plugins["builtin"]["status"] == "loaded"
        applied = running.cli("workflows", "apply", "-f", "examples/hello.yaml")
        assert applied.returncode == 0, applied.stderr
    finally:
        assert running.stop() == 0


async def test_sigterm_stops_gracefully_and_the_run_resumes(
    tmp_path: Path, start_serving: StartServing, hold_env: dict[str, str], release_file: Path
) -> None:
    slow = tmp_path / "slow.yaml"
    slow.write_text(
        textwrap.dedent(
            f"""
            workflow_id: slow
            spec:
              steps:
                - id: wait
                  agent: hold
                  config: {{release: "{release_file}"}}
                - id: after
                  agent: echo
                  depends_on: [wait]
            """
        )
    )
    first = start_serving(env=hold_env)
    assert first.cli("workflows", "apply", "-f", str(slow)).returncode == 0
    started = first.cli("runs", "start", "slow", "--json")
    assert started.returncode == 0, started.stderr
    name = json.loads(started.stdout)["name"]
    # Stopped while the step certainly runs: it holds until released.
    async with grpc.aio.insecure_channel(first.address) as channel:
        await step_reaches(Stubs.on(channel), name, "wait", run_pb2.STEP_STATE_RUNNING)
    assert first.stop() == 0  # graceful: exit code 0

    release_file.touch()
    second = start_serving(env=hold_env)
    watched = second.cli("runs", "watch", name)
    assert watched.returncode == 0, watched.stderr + watched.stdout
    run = json.loads(second.cli("runs", "get", name, "--json").stdout)
    assert run["state"] == "RUN_STATE_SUCCEEDED"
    attempts = run["steps"][0]["attempts"]
    assert [a["state"] for a in attempts] == [
        "ATTEMPT_STATE_INTERRUPTED",
        "ATTEMPT_STATE_SUCCEEDED",
    ]
    assert second.stop() == 0
