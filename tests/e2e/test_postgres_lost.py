"""Hostile: a `podium serve` whose PostgreSQL is killed under it. Every kind
of request made afterwards (reads, writes, a stream, pause and resume, quota
and budget updates) is refused UNAVAILABLE with the reason
STORAGE_UNAVAILABLE, never INTERNAL or UNKNOWN; the log says so in one line
per refusal and holds no traceback (neither the requests' nor the
background loops' nor the driver's pool)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from podium.testing import (
    Stubs,
    create_workflow,
    echo_step,
    error_info,
    eventually,
    run_to_end,
    start_server_process_async,
)
from podium.testing.postgres import PodiumDatabases, PostgresForTests
from podium.v1 import (
    control_service_pb2,
    execution_service_pb2,
    progress_service_pb2,
    workflow_service_pb2,
)
from tests.e2e.test_on_postgres import NOT_SERVING, health, system_status

C = control_service_pb2
X = execution_service_pb2
W = workflow_service_pb2
P = progress_service_pb2


@pytest.fixture
def private_postgres() -> Iterator[PostgresForTests]:
    """A PostgreSQL server of this test's own: it gets killed."""
    with PostgresForTests.temporary() as server:
        yield server


async def test_every_request_after_the_database_is_lost_is_a_clean_unavailable(
    private_postgres: PostgresForTests, tmp_path: Path
) -> None:
    url = await PodiumDatabases(private_postgres).create()
    server = await start_server_process_async(url, log_dir=tmp_path)
    async with server, grpc.aio.insecure_channel(server.address) as channel:
        stubs = Stubs.on(channel)
        await create_workflow(stubs, "hello", {"steps": [echo_step("greet")]})
        done, _ = await run_to_end(stubs, "hello", {"n": 1})

        await asyncio.to_thread(private_postgres.kill)

        async def not_serving() -> bool:
            return await health(stubs) == NOT_SERVING

        await eventually(not_serving, what="NOT_SERVING once the database is gone")

        async def watch() -> Any:
            return [e async for e in stubs.progress.WatchRun(P.WatchRunRequest(run=done.name))]

        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "GetRun": lambda: stubs.executions.GetRun(X.GetRunRequest(name=done.name)),
            "ListRuns": lambda: stubs.executions.ListRuns(X.ListRunsRequest()),
            "StartRun": lambda: stubs.executions.StartRun(
                X.StartRunRequest(workflow="workflows/hello")
            ),
            "PauseRun": lambda: stubs.executions.PauseRun(X.PauseRunRequest(name=done.name)),
            "ResumeRun": lambda: stubs.executions.ResumeRun(X.ResumeRunRequest(name=done.name)),
            "GetWorkflow": lambda: stubs.workflows.GetWorkflow(
                W.GetWorkflowRequest(name="workflows/hello")
            ),
            "ListWorkflows": lambda: stubs.workflows.ListWorkflows(W.ListWorkflowsRequest()),
            "WatchRun": watch,
        }
        codes: dict[str, tuple[grpc.StatusCode, str]] = {}
        for name, call in calls.items():
            try:
                await call()
            except grpc.aio.AioRpcError as refused:
                codes[name] = (refused.code(), error_info(refused).reason)
            else:
                codes[name] = (grpc.StatusCode.OK, "")
        unavailable = (grpc.StatusCode.UNAVAILABLE, "STORAGE_UNAVAILABLE")
        # Writes are refused; a read is answered where the server can
        # (from what it holds), else refused the same way.
        for name in ("StartRun", "PauseRun", "ResumeRun"):
            assert codes[name] == unavailable, codes
        for code in codes.values():
            assert code in (unavailable, (grpc.StatusCode.OK, "")), codes
        database = (await system_status(stubs)).database
        assert (database.reachable, database.writable) == (False, False)
        # Background loops (scheduler, recovery, retention) tick meanwhile.
        await asyncio.sleep(2.5)
    log = server.log_text()
    assert "not serving: lost the database" in log
    assert "Traceback" not in log, log[-4000:]
    assert "failed unexpectedly" not in log
    assert log.count("refused: lost the database") >= len(calls) - 1


async def test_a_cluster_server_logs_a_lost_database_once_not_once_per_pass(
    private_postgres: PostgresForTests, tmp_path: Path
) -> None:
    """The cluster's lease and poll loops retry every few milliseconds (poll:
    0.05 s); while the database is gone each says so once (a minute later,
    once more), and the store adds no line per retried read."""
    url = await PodiumDatabases(private_postgres).create()
    server = await start_server_process_async(url, log_dir=tmp_path, args=("--cluster",))
    async with server, grpc.aio.insecure_channel(server.address) as channel:
        stubs = Stubs.on(channel)
        await asyncio.to_thread(private_postgres.kill)

        async def both_loops_failed() -> bool:
            log = server.log_text()
            return "cluster: poll pass failed" in log and "cluster: lease pass failed" in log

        await eventually(both_loops_failed, what="the lease and poll loops failing")
        # Dozens of poll passes and a few lease passes more (0.05 s and 1.75 s apart).
        await asyncio.sleep(4)
        assert await health(stubs) == NOT_SERVING
    log = server.log_text()
    assert log.count("cluster: poll pass") == 1, log[-4000:]
    assert log.count("cluster: lease pass") == 1, log[-4000:]
    assert log.count("refused: lost the database") <= 2, log[-4000:]
    assert "Traceback" not in log, log[-4000:]
