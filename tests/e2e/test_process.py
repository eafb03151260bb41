"""start_server_process() (podium.testing.process): `podium serve` on a free
port, SERVING when it returns, its log in a file; a taken port tried again
with the next; a server that exits first fails at once with its log; a
graceful stop (exit 0) and a kill (SIGKILL)."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podium.testing import ServerExited, start_server_process
from podium.testing.process import PortTaken


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process listens on for the length of the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_it_serves_logs_to_a_file_and_stops_gracefully(tmp_path: Path) -> None:
    with start_server_process(tmp_path / "podium.db") as server:
        assert server.running
        assert server.address == f"127.0.0.1:{server.port}"
        assert server.env["PODIUM_ADDRESS"] == server.address
        assert server.log_path.parent == tmp_path  # next to the database
        listed = server.cli("plugins", "--json")
        assert listed.returncode == 0, listed.stderr
        assert '"builtin"' in listed.stdout
        assert server.spawned_at <= time.time()
        assert server.stop() == 0  # SIGTERM: a graceful stop
    assert "podium serving on" in server.log_path.read_text()
    assert server.kill() == 0  # stopping again is harmless and says how it ended


def test_a_kill_is_a_sigkill(tmp_path: Path) -> None:
    server = start_server_process(tmp_path / "podium.db")
    try:
        assert server.kill() == -signal.SIGKILL
        assert not server.running
    finally:
        server.stop()


def test_a_taken_port_is_tried_again_with_the_next(tmp_path: Path, taken_port: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = int(probe.getsockname()[1])
    with start_server_process(tmp_path / "podium.db", ports=[taken_port, free]) as server:
        assert server.port == free
    logs = sorted(tmp_path.glob("podium-serve-*.log"))
    assert len(logs) == 2
    assert any("Address already in use" in log.read_text() for log in logs)


def test_the_last_taken_port_is_an_error_with_the_log(tmp_path: Path, taken_port: int) -> None:
    with pytest.raises(PortTaken, match="is taken"):
        start_server_process(tmp_path / "podium.db", ports=[taken_port])


def test_a_server_that_exits_first_fails_at_once_with_its_log(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("quotas: [{name: q, scope: nowhere, dimension: requests, limit: 1}]\n")
    with pytest.raises(ServerExited) as exited:
        start_server_process(tmp_path / "podium.db", args=("--policy", str(bad)))
    assert "exited with code 2" in str(exited.value)
    assert "quotas[0].scope" in str(exited.value)


def test_without_a_database_file_the_log_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="log_dir"):
        start_server_process(":memory:")
    with start_server_process(":memory:", log_dir=tmp_path) as server:
        assert server.log_path.parent == tmp_path
