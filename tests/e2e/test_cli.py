"""The `podium` CLI against a real `podium serve` process: the happy path
(apply, start with live progress, get, list), error paths (one line, non-zero
exit, no traceback), a broken plugin that does not take the server down, and
graceful shutdown on SIGTERM leaving unfinished runs resumable."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "podium.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    process: subprocess.Popen[str]
    address: str
    env: dict[str, str]

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


class ServerExited(AssertionError):
    """The server process ended before it served."""


def wait_serving(
    address: str, process: subprocess.Popen[str], timeout: float = 30, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # typeshed's stub lists no methods
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = log.read_text() if log is not None and log.exists() else ""
                if not output and process.stderr is not None:
                    output = process.stderr.read()
                raise ServerExited(output)
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.05)
    raise AssertionError("server did not become SERVING")


def start_serving(
    db: Path, extra_env: dict[str, str] | None = None, extra_args: tuple[str, ...] = ()
) -> Served:
    """A `podium serve` process on a free port. Its log goes to a file next to
    the database (a pipe nobody reads would block a chatty server), and a
    port taken between free_port() and the server's bind is retried."""
    for attempt in range(3):
        address = f"127.0.0.1:{free_port()}"
        env = {**os.environ, "PODIUM_ADDRESS": address, "COLUMNS": "200", **(extra_env or {})}
        log = db.with_name(f"{db.name}.serve-{attempt}-{address.rsplit(':', 1)[1]}.log")
        with log.open("w") as sink:
            process = subprocess.Popen(
                [*CLI, "serve", "--address", address, "--db", str(db), "--grace", "2", *extra_args],
                cwd=ROOT,
                env=env,
                stderr=sink,
                text=True,
            )
        try:
            wait_serving(address, process, log=log)
        except ServerExited as exited:
            if "cannot listen" in str(exited) and attempt < 2:
                continue
            raise
        return Served(process, address, env)
    raise AssertionError("unreachable")


def stop(served: Served) -> int:
    served.process.send_signal(signal.SIGTERM)
    try:
        return served.process.wait(timeout=30)
    finally:
        if served.process.poll() is None:
            served.process.kill()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    running = start_serving(tmp_path / "podium.db")
    try:
        yield running
    finally:
        stop(running)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_apply_start_watch_get_and_list(served: Served) -> None:
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


def test_invalid_workflow_is_one_line_with_the_field(served: Served, tmp_path: Path) -> None:
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
    assert_one_line_error(result, "INVALID_ARGUMENT", "spec.steps[0].agent", "no_such_agent")
    assert served.cli("workflows", "get", "bad").returncode != 0  # nothing was stored


def test_unknown_run_and_bad_input_are_one_line_errors(served: Served) -> None:
    assert_one_line_error(served.cli("runs", "get", "nope"), "NOT_FOUND")
    assert_one_line_error(served.cli("runs", "start", "hello", "--input", "{not json"))


def test_a_broken_plugin_is_listed_and_the_server_serves(tmp_path: Path) -> None:
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
    running = start_serving(tmp_path / "podium.db", {"PYTHONPATH": pythonpath})
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
        assert stop(running) == 0


def test_sigterm_stops_gracefully_and_the_run_resumes(tmp_path: Path) -> None:
    db = tmp_path / "podium.db"
    slow = tmp_path / "slow.yaml"
    slow.write_text(
        textwrap.dedent(
            """
            workflow_id: slow
            spec:
              steps:
                - id: wait
                  agent: echo
                  config: {delay_ms: 1500}
                - id: after
                  agent: echo
                  depends_on: [wait]
            """
        )
    )
    first = start_serving(db)
    try:
        assert first.cli("workflows", "apply", "-f", str(slow)).returncode == 0
        started = first.cli("runs", "start", "slow", "--json")
        assert started.returncode == 0, started.stderr
        name = json.loads(started.stdout)["name"]
    finally:
        assert stop(first) == 0  # graceful: exit code 0

    second = start_serving(db)
    try:
        watched = second.cli("runs", "watch", name)
        assert watched.returncode == 0, watched.stderr + watched.stdout
        run = json.loads(second.cli("runs", "get", name, "--json").stdout)
        assert run["state"] == "RUN_STATE_SUCCEEDED"
        attempts = run["steps"][0]["attempts"]
        assert [a["state"] for a in attempts] == [
            "ATTEMPT_STATE_INTERRUPTED",
            "ATTEMPT_STATE_SUCCEEDED",
        ]
    finally:
        stop(second)
