"""Load shedding: a server holding its limit of unary calls answers the next
one RESOURCE_EXHAUSTED (OVERLOADED) with a RetryInfo delay, at once, while
health checks and streams still pass; both Python clients wait that delay and
retry, so their call succeeds once the server has room.

The calls are held by a servicer that answers only when the test says, on a
real grpc.aio server with Podium's LoadShedder (the interceptor `start_server`
installs): what no Podium RPC can be made to do deterministically. It serves
ExecutionService/GetRun and ProgressService/WatchRun by name, the methods the
clients retry and stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from podium.client import AsyncClient, Client, PodiumError
from podium.client._flow import server_retry_delay
from podium.server.load_shedding import LoadShedder
from podium.testing import error_info
from podium.v1 import (
    execution_service_pb2,
    progress_service_pb2,
    progress_service_pb2_grpc,
    run_pb2,
)

LIMIT = 2
# Long enough that a retry before it would be told apart from one after it.
RETRY_AFTER = 0.3


class HeldExecutions:
    """GetRun that answers once `release` is set; notes when each call arrived."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.arrivals: list[float] = []

    async def get_run(
        self, request: execution_service_pb2.GetRunRequest, context: Any
    ) -> execution_service_pb2.GetRunResponse:
        self.arrivals.append(time.monotonic())
        await self.release.wait()
        return execution_service_pb2.GetRunResponse(run=run_pb2.Run(name=request.name))

    async def cancel_run(
        self, request: execution_service_pb2.CancelRunRequest, context: Any
    ) -> execution_service_pb2.CancelRunResponse:
        return execution_service_pb2.CancelRunResponse(run=run_pb2.Run(name=request.name))

    async def watch_run(
        self, request: progress_service_pb2.WatchRunRequest, context: Any
    ) -> AsyncIterator[progress_service_pb2.WatchRunResponse]:
        yield progress_service_pb2.WatchRunResponse()


class Held:
    def __init__(self, server: grpc.aio.Server, port: int, shedder: LoadShedder) -> None:
        self.server, self.port, self.shedder = server, port, shedder
        self.executions = HeldExecutions()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
async def held() -> AsyncIterator[Held]:
    shedder = LoadShedder(LIMIT, retry_after=RETRY_AFTER)
    server = grpc.aio.server(interceptors=[shedder])
    port = server.add_insecure_port("127.0.0.1:0")
    running = Held(server, port, shedder)
    executions = running.executions
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "podium.v1.ExecutionService",
                {
                    "GetRun": grpc.unary_unary_rpc_method_handler(
                        executions.get_run,
                        request_deserializer=execution_service_pb2.GetRunRequest.FromString,
                        response_serializer=execution_service_pb2.GetRunResponse.SerializeToString,
                    ),
                    "CancelRun": grpc.unary_unary_rpc_method_handler(
                        executions.cancel_run,
                        request_deserializer=execution_service_pb2.CancelRunRequest.FromString,
                        response_serializer=execution_service_pb2.CancelRunResponse.SerializeToString,
                    ),
                },
            ),
            grpc.method_handlers_generic_handler(
                "podium.v1.ProgressService",
                {
                    "WatchRun": grpc.unary_stream_rpc_method_handler(
                        executions.watch_run,
                        request_deserializer=progress_service_pb2.WatchRunRequest.FromString,
                        response_serializer=progress_service_pb2.WatchRunResponse.SerializeToString,
                    )
                },
            ),
        )
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await server.start()
    try:
        yield running
    finally:
        running.executions.release.set()
        await server.stop(0)


async def fill(held: Held, channel: grpc.aio.Channel) -> list[Any]:
    """LIMIT calls in flight, held."""
    get_run = channel.unary_unary(
        "/podium.v1.ExecutionService/GetRun",
        request_serializer=execution_service_pb2.GetRunRequest.SerializeToString,
        response_deserializer=execution_service_pb2.GetRunResponse.FromString,
    )
    calls = [
        get_run(execution_service_pb2.GetRunRequest(name=f"runs/held{i}")) for i in range(LIMIT)
    ]
    while held.shedder.in_flight < LIMIT:
        await asyncio.sleep(0.01)
    return calls


def raw_get_run(channel: grpc.aio.Channel) -> Any:
    return channel.unary_unary(
        "/podium.v1.ExecutionService/GetRun",
        request_serializer=execution_service_pb2.GetRunRequest.SerializeToString,
        response_deserializer=execution_service_pb2.GetRunResponse.FromString,
    )


async def test_a_full_server_sheds_with_overloaded_and_a_retry_delay(held: Held) -> None:
    async with grpc.aio.insecure_channel(held.address) as channel:
        calls = await fill(held, channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw_get_run(channel)(execution_service_pb2.GetRunRequest(name="runs/x"))
        error = caught.value
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_info(error).reason == "OVERLOADED"
        assert "max_calls_in_flight" in (error.details() or "")
        assert server_retry_delay(error) == pytest.approx(RETRY_AFTER)
        assert held.shedder.shed == 1
        # The shed call never reached the servicer.
        assert len(held.executions.arrivals) == LIMIT

        # Health and streams are never shed.
        # Typed Any: the health stub's type stubs know no aio methods.
        health_stub: Any = health_pb2_grpc.HealthStub(channel)
        checked = await health_stub.Check(health_pb2.HealthCheckRequest())
        assert checked.status == health_pb2.HealthCheckResponse.SERVING
        stream = progress_service_pb2_grpc.ProgressServiceStub(channel).WatchRun(
            progress_service_pb2.WatchRunRequest(run="runs/x")
        )
        assert len([response async for response in stream]) == 1
        assert held.shedder.shed == 1

        # Room again once the held calls are answered.
        held.executions.release.set()
        await asyncio.gather(*calls)
        answered = await raw_get_run(channel)(execution_service_pb2.GetRunRequest(name="runs/y"))
        assert answered.run.name == "runs/y"
        assert held.shedder.in_flight == 0


async def release_after_a_shed(held: Held) -> None:
    while held.shedder.shed == 0:
        await asyncio.sleep(0.01)
    held.executions.release.set()


async def test_the_async_client_waits_the_servers_delay_and_retries(held: Held) -> None:
    async with grpc.aio.insecure_channel(held.address) as channel:
        await fill(held, channel)
        releasing = asyncio.create_task(release_after_a_shed(held))
        async with AsyncClient(held.address) as client:
            asked = time.monotonic()
            run = await client.get_run("runs/r1")
        await releasing
    assert run.name == "runs/r1"
    assert held.shedder.shed >= 1
    # The retry that got through came no sooner than the delay the server asked for.
    assert held.executions.arrivals[-1] - asked >= RETRY_AFTER


async def test_the_blocking_client_waits_the_servers_delay_and_retries(held: Held) -> None:
    async with grpc.aio.insecure_channel(held.address) as channel:
        await fill(held, channel)
        releasing = asyncio.create_task(release_after_a_shed(held))

        def call() -> tuple[float, run_pb2.Run]:
            with Client(held.address) as client:
                asked = time.monotonic()
                return asked, client.get_run("runs/r2")

        asked, run = await asyncio.to_thread(call)
        await releasing
    assert run.name == "runs/r2"
    assert held.shedder.shed >= 1
    assert held.executions.arrivals[-1] - asked >= RETRY_AFTER


async def test_a_call_that_is_not_safe_to_repeat_reports_the_overload(held: Held) -> None:
    # CancelRun is not in the clients' list of calls safe to repeat.
    async with grpc.aio.insecure_channel(held.address) as channel:
        await fill(held, channel)
        async with AsyncClient(held.address) as client:
            with pytest.raises(PodiumError) as caught:
                await client.cancel_run("runs/x")
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert caught.value.reason == "OVERLOADED"
    assert held.shedder.shed == 1


def test_the_shedder_needs_a_positive_limit() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LoadShedder(0)
