"""The secure setup with the real commands: the first admin token made
against the database, `podium serve --auth`, the CLI with and without
--token / PODIUM_TOKEN, a second token, the audit trail; no secret in the
server's log."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from podium.testing import ServerProcess

StartServing = Callable[..., ServerProcess]
OneLineError = Callable[..., None]
CLI = (sys.executable, "-m", "podium.cli")
HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello.yaml"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_bootstrap_serve_with_auth_and_use_tokens(
    tmp_path: Path, start_serving: StartServing, one_line_error: OneLineError
) -> None:
    db = tmp_path / "podium.db"
    bootstrap = _cli("tokens", "create", "--db", str(db), "--role", "admin", "--name", "first")
    assert bootstrap.returncode == 0, bootstrap.stderr
    admin = bootstrap.stdout.strip()
    assert admin.startswith("pod_") and "shown only now" in bootstrap.stderr

    server = start_serving(db, args=("--auth",))
    address = ("--address", server.address)
    anonymous = _cli(*address, "workflows", "list")
    one_line_error(anonymous, "UNAUTHENTICATED", "credentials")

    whoami = _cli(*address, "--token", admin, "whoami")
    assert whoami.returncode == 0, whoami.stderr
    assert "tenant default roles admin" in whoami.stdout

    created = _cli(
        *address,
        "tokens",
        "create",
        "--role",
        "viewer",
        "--name",
        "ci",
        env={"PODIUM_TOKEN": admin},
    )
    assert created.returncode == 0, created.stderr
    viewer = created.stdout.strip()
    as_viewer = {"PODIUM_TOKEN": viewer}
    assert _cli(*address, "workflows", "list", env=as_viewer).returncode == 0
    applied = _cli(*address, "workflows", "apply", "-f", str(HELLO), env=as_viewer)
    one_line_error(applied, "PERMISSION_DENIED")

    as_admin = {"PODIUM_TOKEN": admin}
    assert _cli(*address, "workflows", "apply", "-f", str(HELLO), env=as_admin).returncode == 0
    watched = _cli(
        *address, "runs", "start", "hello", "--input", '{"name": "Ada"}', "--watch", env=as_admin
    )
    assert watched.returncode == 0, watched.stderr
    assert "RUN_SUCCEEDED" in watched.stdout  # the watch stream carried the token too

    while_serving = _cli("tokens", "create", "--db", str(db), "--role", "admin")
    one_line_error(while_serving, "error:")

    audit = _cli(*address, "--json", "audit", env={"PODIUM_TOKEN": admin})
    assert audit.returncode == 0, audit.stderr
    assert "CreateToken" in audit.stdout and "CreateWorkflow" in audit.stdout

    server.stop()
    log = server.log_path.read_text()
    assert admin not in log and viewer not in log
    assert "podium serving on" in log and "authentication is off" not in log
