"""Fixtures for the end-to-end tests: `podium serve` in its own process on a
database in tmp_path, run from the repository root (the examples are
relative paths), the CLI's one-line error contract, and the `hold` agent
plugin (site/) that holds a step until the test creates a file."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import pytest

from podium.testing import (
    Cluster,
    ServerProcess,
    Stubs,
    WorkerProcess,
    start_server_process,
    start_worker_process,
)
from podium.testing.cluster import TEST_LEASE

ROOT = Path(__file__).resolve().parents[2]
# A site directory with the `hold` agent plugin (see site/podium_e2e_hold.py).
HOLD_SITE = Path(__file__).resolve().parent / "site"
# A site directory with the `wlog` agent plugin that workers load (worker_site/).
WORKER_SITE = Path(__file__).resolve().parent / "worker_site"
# Wide enough that the CLI's renderer never wraps an error line.
CLI_ENV = {"COLUMNS": "200"}

StartServing = Callable[..., ServerProcess]
OneLineError = Callable[..., None]


@pytest.fixture
def start_serving(tmp_path: Path) -> Iterator[StartServing]:
    """Starts `podium serve` processes (`db` defaults to one database in
    tmp_path, so a second call restarts on it); any still running at the end
    of the test is stopped."""
    started: list[ServerProcess] = []

    def start(
        db: Path | None = None, *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> ServerProcess:
        server = start_server_process(
            db or tmp_path / "podium.db", env={**CLI_ENV, **(env or {})}, args=args, cwd=ROOT
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def served(start_serving: StartServing) -> ServerProcess:
    return start_serving()


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """The CLI failed with one line on stderr containing every needle, and no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def one_line_error() -> OneLineError:
    return _assert_one_line_error


@pytest.fixture
def hold_env() -> dict[str, str]:
    """Added to a server's environment, it loads the `hold` agent plugin:
    steps of agent `hold` with config `{"release": FILE}` hold until FILE exists."""
    pythonpath = os.pathsep.join(filter(None, [str(HOLD_SITE), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": pythonpath}


@pytest.fixture
def release_file(tmp_path: Path) -> Path:
    """The file whose creation releases held steps (it does not exist yet)."""
    return tmp_path / "release-the-hold"


# -- clusters: several servers on one database ---------------------------------------
# Each backend says how to start one server of a cluster on its database. SQLite: one
# file, `--cluster`; PostgreSQL: a database of the test's own on the session's
# embedded server, `--db postgresql://... --cluster`. Every cluster test runs on both.

BACKENDS = ["sqlite", "postgres"]
# The lease the cluster tests' servers take (seconds): short by default so that a
# takeover comes soon; PODIUM_TEST_LEASE=7 measures failover with the default lease.
LEASE = float(os.environ.get("PODIUM_TEST_LEASE", "0") or 0) or TEST_LEASE


@pytest.fixture(params=BACKENDS)
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    if request.param == "sqlite":
        made = Cluster(str(tmp_path / "cluster.db"), tmp_path, cwd=ROOT, env=CLI_ENV, lease=LEASE)
        try:
            yield made
        finally:
            made.stop_all()
        return
    url = request.getfixturevalue("postgres_db")
    made = Cluster(url, tmp_path, cwd=ROOT, env=CLI_ENV, lease=LEASE)
    try:
        yield made
    finally:
        made.stop_all()


# -- workers: `podium worker` processes serving `wlog`, and channels to servers -------


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Starts `podium worker` processes with the `wlog` plugin installed,
    serving only `wlog`; stopped at the end of the test."""
    started: list[WorkerProcess] = []
    pythonpath = os.pathsep.join(filter(None, [str(WORKER_SITE), os.environ.get("PYTHONPATH")]))

    def start(address: str, *args: str) -> WorkerProcess:
        worker = start_worker_process(
            address,
            log_dir=tmp_path,
            args=["--agent", "wlog", *args],
            # Only this plugin (and the builtin one): the provider SDKs' imports
            # would only slow the worker's start.
            env={"PYTHONPATH": pythonpath, "PODIUM_PLUGINS": "worker_agents"},
            cwd=ROOT,
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[ServerProcess], Stubs]]:
    channels: list[grpc.aio.Channel] = []

    def on(server: ServerProcess) -> Stubs:
        channel = grpc.aio.insecure_channel(server.address)
        channels.append(channel)
        return Stubs.on(channel)

    yield on
    for channel in channels:
        await channel.close()
