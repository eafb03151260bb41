"""`podium serve --db postgresql://...` as a process: killed with SIGKILL
mid-flight and restarted on the same database (the crash-recovery tests of
test_crash_recovery.py, collected here again with servers on PostgreSQL),
one server per database, an unreachable database at start, and a server
that loses its database while serving: it stops acknowledging writes, turns
NOT_SERVING and says why; a restart once the database is back resumes."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from podium.testing import (
    ServerExited,
    ServerProcess,
    Stubs,
    create_workflow,
    echo_step,
    error_info,
    eventually,
    get_run,
    run_to_end,
    start_run,
    start_server_process,
    start_server_process_async,
)
from podium.testing.postgres import PodiumDatabases, PostgresForTests
from podium.testing.process import CLI
from podium.v1 import control_service_pb2, execution_service_pb2, run_pb2
from tests.e2e.conftest import CLI_ENV, ROOT, OneLineError, StartServing
from tests.e2e.test_crash_recovery import (
    test_sigkill_mid_flight_then_every_run_completes,
    test_sigkill_while_waiting_for_approval_then_approvable,
)

__all__ = [
    "test_sigkill_mid_flight_then_every_run_completes",
    "test_sigkill_while_waiting_for_approval_then_approvable",
]

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.fixture
def start_serving(tmp_path: Path, postgres_db: str) -> Iterator[StartServing]:
    """As tests/e2e/conftest.py's, on a PostgreSQL database of the test's own."""
    started: list[ServerProcess] = []

    def start(
        db: str | None = None, *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> ServerProcess:
        server = start_server_process(
            db or postgres_db,
            env={**CLI_ENV, **(env or {})},
            args=args,
            cwd=ROOT,
            log_dir=tmp_path,
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


async def health(stubs: Stubs) -> int:
    reply = await stubs.health.Check(health_pb2.HealthCheckRequest(service=""))
    return int(reply.status)


async def system_status(stubs: Stubs) -> control_service_pb2.GetSystemStatusResponse:
    return await stubs.control.GetSystemStatus(control_service_pb2.GetSystemStatusRequest())


async def run_names(stubs: Stubs) -> set[str]:
    reply = await stubs.executions.ListRuns(execution_service_pb2.ListRunsRequest(page_size=1000))
    return {run.name for run in reply.runs}


def test_a_second_server_on_the_same_database_refuses(start_serving: StartServing) -> None:
    first = start_serving()
    with pytest.raises(ServerExited, match="is in use by another podium server"):
        start_serving()
    assert first.running
    assert first.cli("workflows", "list").returncode == 0
    assert first.stop() == 0
    # The lock goes with its owner's session: the next server starts.
    assert start_serving().running


def test_a_killed_server_leaves_no_stale_lock(start_serving: StartServing) -> None:
    start_serving().kill()
    assert start_serving().running


def test_an_unreachable_database_is_one_line_and_an_exit(tmp_path: Path) -> None:
    # A socket directory where no server listens, and a password to keep out of sight.
    url = f"postgresql://podium:s3cret@/podium?host={tmp_path}"
    result = subprocess.run(
        [*CLI, "serve", "--db", url, "--address", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot open database postgresql://podium:***@/podium"), last
    assert "s3cret" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def private_postgres() -> Iterator[PostgresForTests]:
    """A PostgreSQL server of this test's own: it gets killed."""
    with PostgresForTests.temporary() as server:
        yield server


async def test_a_server_that_loses_its_database_stops_writes_until_restarted(
    private_postgres: PostgresForTests, tmp_path: Path
) -> None:
    url = await PodiumDatabases(private_postgres).create()
    first = await start_server_process_async(url, log_dir=tmp_path)
    async with first, grpc.aio.insecure_channel(first.address) as channel:
        stubs = Stubs.on(channel)
        await create_workflow(stubs, "hello", {"steps": [echo_step("greet")]})
        acknowledged = {(await run_to_end(stubs, "hello", {"n": n}))[0].name for n in range(5)}
        assert await health(stubs) == SERVING
        database = (await system_status(stubs)).database
        assert (database.backend, database.reachable, database.writable) == (
            "postgresql",
            True,
            True,
        )

        await asyncio.to_thread(private_postgres.kill)

        async def not_serving() -> bool:
            return await health(stubs) == NOT_SERVING

        await eventually(not_serving, what="NOT_SERVING once the database is gone")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await start_run(stubs, "hello", {"n": "late"})
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_info(refused.value).reason == "STORAGE_UNAVAILABLE"
        database = (await system_status(stubs)).database
        assert (database.reachable, database.writable) == (False, False)
        assert database.error
        shown = await asyncio.to_thread(first.cli, "status")
        assert shown.returncode == 1, shown.stderr
        assert "postgresql, unreachable" in shown.stdout

        # The database comes back: this server stays NOT_SERVING (what it
        # holds in memory may be ahead of what was committed), and says why.
        await asyncio.to_thread(private_postgres.restart)
        assert await health(stubs) == NOT_SERVING

        async def answers_again() -> bool:
            return (await system_status(stubs)).database.reachable

        await eventually(answers_again, what="the database answering a ping again")
        database = (await system_status(stubs)).database
        assert not database.writable
        assert "lost the database" in database.error
    # The whole log: each request refused afterwards logs a line below it.
    assert "not serving: lost the database postgresql://" in first.log_text()

    # A new server on the same database serves everything acknowledged.
    second = await start_server_process_async(url, log_dir=tmp_path)
    async with second, grpc.aio.insecure_channel(second.address) as channel:
        stubs = Stubs.on(channel)
        assert await health(stubs) == SERVING
        assert await run_names(stubs) == acknowledged
        for name in acknowledged:
            assert (await get_run(stubs, name)).state == run_pb2.RUN_STATE_SUCCEEDED
        run, _ = await run_to_end(stubs, "hello", {"n": "after"})
        assert run.state == run_pb2.RUN_STATE_SUCCEEDED


def test_the_first_admin_token_is_made_against_the_database(
    start_serving: StartServing, postgres_db: str, one_line_error: OneLineError
) -> None:
    """`podium tokens create --db postgresql://...`, then `serve --auth` on it."""

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args], capture_output=True, text=True, timeout=60, check=False
        )

    bootstrap = cli("tokens", "create", "--db", postgres_db, "--role", "admin", "--name", "first")
    assert bootstrap.returncode == 0, bootstrap.stderr
    admin = bootstrap.stdout.strip()
    assert admin.startswith("pod_")

    server = start_serving(args=("--auth",))
    whoami = cli("--address", server.address, "--token", admin, "whoami")
    assert whoami.returncode == 0, whoami.stderr
    assert "tenant default roles admin" in whoami.stdout
    # The database belongs to the server now.
    one_line_error(cli("tokens", "create", "--db", postgres_db, "--role", "admin"), "error:")
    assert server.stop() == 0
    assert admin not in server.log_path.read_text()
