"""WatchRun's lag bound: a subscriber that stops reading while its run goes on
is cut off once it falls out of the run's feed (RESOURCE_EXHAUSTED, reason
SUBSCRIBER_TOO_SLOW, ErrorInfo metadata `last_sequence`), the run is not
slowed by it, and resuming after that sequence delivers the rest with no gap
and no duplicate: by hand with the raw stub, transparently with the clients."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import grpc
import pytest

from podium.client import AsyncClient, Client
from podium.core.states import RunState
from podium.testing import (
    FINAL_EVENT_TYPES,
    HANG_TIMEOUT,
    InProcessServer,
    create_workflow,
    echo_step,
    error_info,
    eventually,
    sequences,
    serving,
    start_run,
)
from podium.v1 import event_pb2, progress_service_pb2, run_pb2

# Events the feed holds in these tests: the subscriber falls out of it soon.
FEED = 20
# Ten outputs of 600 kB fill any client's flow-control window (4 MiB at most,
# grpc's BDP probing included), so the server's writes to a subscriber that
# does not read block, and the fan-out after them pushes it out of the feed.
BLOB = "x" * 600_000
BIG_STEPS = 10
ITEMS = 200


def spec() -> dict[str, Any]:
    return {
        "steps": [
            echo_step("gate", delay_ms=300),
            *(echo_step(f"big{i}", "gate", input={"blob": "input.blob"}) for i in range(BIG_STEPS)),
            echo_step(
                "each",
                *(f"big{i}" for i in range(BIG_STEPS)),
                forEach={"items": "input.items"},
                input={"value": "item"},
            ),
        ]
    }


async def lagging_run(server: InProcessServer) -> run_pb2.Run:
    server.server.engine.hub.feed_events = FEED
    await create_workflow(server.stubs, "laggard", spec())
    return await start_run(server.stubs, "laggard", {"blob": BLOB, "items": list(range(ITEMS))})


async def succeeded(server: InProcessServer, name: str) -> int:
    """Waits until the run succeeded; its last sequence. (Asked of the engine: the
    run's GetRun, ten outputs of 600 kB, is more than a client accepts.)"""
    engine = server.server.engine
    run_id = name.removeprefix("runs/")

    async def done() -> bool:
        state, _ = await engine.run_status(run_id)
        return state == RunState.SUCCEEDED

    # Nobody reads meanwhile: the run goes on regardless of its subscriber.
    await eventually(done, what="the run succeeded")
    return (await engine.run_status(run_id))[1]


def assert_complete(events: list[event_pb2.RunEvent], last_sequence: int) -> None:
    assert sequences(events) == list(range(1, last_sequence + 1))
    assert [e.type in FINAL_EVENT_TYPES for e in events].index(True) == len(events) - 1


async def test_a_subscriber_that_stops_reading_is_cut_off_and_resumes_with_the_stub() -> None:
    async with serving() as server:
        stubs = server.stubs
        run = await lagging_run(server)
        call = stubs.progress.WatchRun(progress_service_pb2.WatchRunRequest(run=run.name))
        stream = call.__aiter__()
        first = await asyncio.wait_for(stream.__anext__(), HANG_TIMEOUT)
        events = list(first.events)
        last_sequence = await succeeded(server, run.name)

        async def read_until_cut_off() -> grpc.aio.AioRpcError:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                async for response in stream:
                    events.extend(response.events)
            return raised.value

        error = await asyncio.wait_for(read_until_cut_off(), HANG_TIMEOUT)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        info = error_info(error)
        assert info.reason == "SUBSCRIBER_TOO_SLOW"
        assert info.domain == "podium"
        # The last event sent before the cut, which is the last one received.
        assert int(info.metadata["last_sequence"]) == events[-1].sequence
        assert server.server.engine.hub.cut_offs == 1

        resumed = stubs.progress.WatchRun(
            progress_service_pb2.WatchRunRequest(
                run=run.name, after_sequence=int(info.metadata["last_sequence"])
            )
        )

        async def read_rest() -> None:
            async for response in resumed:
                events.extend(response.events)

        await asyncio.wait_for(read_rest(), HANG_TIMEOUT)
        assert_complete(events, last_sequence)


async def test_the_async_client_resumes_a_cut_off_watch_transparently() -> None:
    async with serving() as server:
        run = await lagging_run(server)
        async with AsyncClient(server.address, timeout=None) as client:
            watch = client.watch(run.name)
            events = [await asyncio.wait_for(anext(watch), HANG_TIMEOUT)]
            last_sequence = await succeeded(server, run.name)

            async def read_rest() -> None:
                events.extend([event async for event in watch])

            await asyncio.wait_for(read_rest(), HANG_TIMEOUT)
        assert server.server.engine.hub.cut_offs >= 1
        assert_complete(events, last_sequence)


async def test_the_sync_client_resumes_a_cut_off_watch_transparently() -> None:
    async with serving() as server:
        run = await lagging_run(server)
        finished = threading.Event()

        def watch() -> list[event_pb2.RunEvent]:
            with Client(server.address, timeout=None) as client:
                stream = client.watch(run.name)
                events = [next(stream)]
                finished.wait(HANG_TIMEOUT)
                return events + list(stream)

        watching = asyncio.ensure_future(asyncio.to_thread(watch))
        last_sequence = await succeeded(server, run.name)
        finished.set()
        events = await asyncio.wait_for(watching, HANG_TIMEOUT)
        assert server.server.engine.hub.cut_offs >= 1
        assert_complete(events, last_sequence)
