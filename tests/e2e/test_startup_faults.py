"""Start-up faults end `podium serve` with one line on stderr and a non-zero
exit within seconds: a corrupt database, a taken port (by anything, by
another podium serve), a database another server owns."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from podium.testing import ServerExited, start_server_process
from podium.testing.process import CLI

# A failed start exits at once; this only bounds a hang (the bug was "forever").
EXIT_CEILING = 30.0


def serve(db: Path, address: str = "127.0.0.1:0", *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "serve", "--db", str(db), "--address", address, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=EXIT_CEILING,
        check=False,
    )


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_corrupt_database_is_one_line_and_an_exit(tmp_path: Path) -> None:
    db = tmp_path / "podium.db"
    db.write_bytes(b"this is not a database, it only sits where one should be" * 200)
    result = serve(db)
    assert result.returncode == 1
    assert last_line(result.stderr) == f"error: cannot open database {db}: file is not a database"
    assert "Traceback" not in result.stderr


def test_a_taken_port_is_one_line_and_an_exit(tmp_path: Path, taken_port: int) -> None:
    address = f"127.0.0.1:{taken_port}"
    result = serve(tmp_path / "podium.db", address)
    assert result.returncode == 1
    assert last_line(result.stderr).startswith(f"error: cannot listen on {address}")
    assert "Traceback" not in result.stderr


def test_a_taken_http_port_is_one_line_and_an_exit(tmp_path: Path, taken_port: int) -> None:
    address = f"127.0.0.1:{taken_port}"
    result = serve(tmp_path / "podium.db", "127.0.0.1:0", "--http-address", address)
    assert result.returncode == 1
    assert last_line(result.stderr).startswith(f"error: cannot listen on {address} (HTTP)")
    assert "Traceback" not in result.stderr


def test_a_second_server_on_the_same_port_refuses(tmp_path: Path) -> None:
    with start_server_process(tmp_path / "first.db") as first:
        # Run directly: a health check on that port would be answered by the first.
        result = serve(tmp_path / "second.db", first.address)
        assert result.returncode == 1
        assert last_line(result.stderr).startswith(f"error: cannot listen on {first.address}")
        assert first.running


def test_a_second_server_on_the_same_database_refuses(tmp_path: Path) -> None:
    db = tmp_path / "podium.db"
    with start_server_process(db) as first:
        with pytest.raises(ServerExited, match="is in use by another podium server"):
            start_server_process(db)
        assert first.running
        assert first.cli("workflows", "list").returncode == 0
    # The lock goes with its owner: the next server starts on the same file.
    with start_server_process(db) as after:
        assert after.running


def test_a_killed_server_leaves_no_stale_lock(tmp_path: Path) -> None:
    db = tmp_path / "podium.db"
    start_server_process(db).kill()
    with start_server_process(db) as after:
        assert after.running
