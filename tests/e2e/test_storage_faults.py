"""Storage faults while serving: a server that loses its database file or
cannot write it any more stops acknowledging writes (UNAVAILABLE or
RESOURCE_EXHAUSTED with a reason), turns NOT_SERVING and says why; nothing
it acknowledged is lost and nothing it refused appears later."""

from __future__ import annotations

from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2

from podium.testing import (
    Stubs,
    create_workflow,
    echo_step,
    error_info,
    eventually,
    serving,
    start_run,
    start_server_process_async,
)
from podium.v1 import execution_service_pb2

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def not_serving(stubs: Stubs) -> bool:
    reply = await stubs.health.Check(health_pb2.HealthCheckRequest(service=""))
    return bool(reply.status == NOT_SERVING)


async def run_names(stubs: Stubs) -> set[str]:
    reply = await stubs.executions.ListRuns(execution_service_pb2.ListRunsRequest(page_size=1000))
    return {run.name for run in reply.runs}


async def test_a_deleted_database_stops_writes_and_health(tmp_path: Path) -> None:
    db = tmp_path / "podium.db"
    async with serving(str(db)) as (_, stubs):
        await create_workflow(stubs, "hello", {"steps": [echo_step("greet")]})
        acknowledged = {(await start_run(stubs, "hello", {"n": n})).name for n in range(5)}
        db.unlink()
        await eventually(lambda: not_serving(stubs), what="NOT_SERVING after the delete")
        try:
            await start_run(stubs, "hello", {"n": "late"})
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert error_info(error).reason == "STORAGE_LOST"
        else:
            raise AssertionError("a run was acknowledged on a deleted database")
        assert await run_names(stubs) >= acknowledged


async def test_a_full_disk_refuses_the_run_it_cannot_commit(tmp_path: Path) -> None:
    db = tmp_path / "podium.db"
    big = "x" * 100_000
    acknowledged: set[str] = set()
    refused: grpc.aio.AioRpcError | None = None
    server = await start_server_process_async(db, file_size_limit=1_000_000)
    async with server, grpc.aio.insecure_channel(server.address) as channel:
        stubs = Stubs.on(channel)
        await create_workflow(stubs, "hello", {"steps": [echo_step("greet")]})
        for n in range(40):  # 40 x 100 kB cannot fit under 1 MB
            try:
                run = await start_run(stubs, "hello", {"n": n, "pad": big})
            except grpc.aio.AioRpcError as error:
                refused = error
                break
            acknowledged.add(run.name)
        assert refused is not None, "every run fit: the limit did not apply"
        assert refused.code() in (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.UNAVAILABLE,
        ), refused
        assert error_info(refused).reason in ("STORAGE_FULL", "STORAGE_UNAVAILABLE")
        await eventually(lambda: not_serving(stubs), what="NOT_SERVING when full")
    assert "not serving" in server.log_tail(200)
    restarted = await start_server_process_async(db)
    async with restarted, grpc.aio.insecure_channel(restarted.address) as channel:
        assert await run_names(Stubs.on(channel)) == acknowledged
