"""watch(): resuming after connection loss without gaps or duplicates, against fake servers."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence

import grpc
import pytest

from podium.client import AsyncClient, Client, PodiumError, ReconnectPolicy
from podium.testing import HANG_TIMEOUT, eventually
from podium.v1 import event_pb2, progress_service_pb2, progress_service_pb2_grpc, run_pb2

E = event_pb2
# Quick reconnects that never give up within a test: a server the test restarts may take its
# time to come back on a busy machine.
FAST = ReconnectPolicy(initial_delay=0.01, max_delay=0.05, give_up_after=HANG_TIMEOUT)

WatchContext = grpc.aio.ServicerContext[
    progress_service_pb2.WatchRunRequest, progress_service_pb2.WatchRunResponse
]


def event(
    sequence: int, type_: event_pb2.RunEventType.ValueType = E.RUN_EVENT_TYPE_STEP_PROGRESS
) -> event_pb2.RunEvent:
    return event_pb2.RunEvent(
        run="runs/abc", sequence=sequence, type=type_, run_state=run_pb2.RUN_STATE_RUNNING
    )


def final(sequence: int) -> event_pb2.RunEvent:
    return event_pb2.RunEvent(
        run="runs/abc",
        sequence=sequence,
        type=E.RUN_EVENT_TYPE_RUN_SUCCEEDED,
        run_state=run_pb2.RUN_STATE_SUCCEEDED,
    )


# A script is what each successive WatchRun call does: batches to send, then how it ends
# (None: end the stream cleanly; a StatusCode: abort with it).
Script = tuple[Sequence[Sequence[event_pb2.RunEvent]], grpc.StatusCode | None]


class ScriptedProgress(progress_service_pb2_grpc.ProgressServiceServicer):
    def __init__(self, scripts: Sequence[Script]) -> None:
        self.scripts = list(scripts)
        self.requests: list[int] = []

    async def WatchRun(
        self, request: progress_service_pb2.WatchRunRequest, context: WatchContext
    ) -> AsyncIterator[progress_service_pb2.WatchRunResponse]:
        self.requests.append(request.after_sequence)
        batches, ending = self.scripts.pop(0) if self.scripts else ((), grpc.StatusCode.UNAVAILABLE)
        for batch in batches:
            yield progress_service_pb2.WatchRunResponse(events=batch)
        if ending is not None:
            await context.abort(ending, "scripted")


def scripted(scripts: Sequence[Script]) -> ScriptedProgress:
    # The .pyi marks WatchRuns abstract; at run time the base answers UNIMPLEMENTED.
    return ScriptedProgress(scripts)  # type: ignore[abstract]


async def serve(servicer: ScriptedProgress, port: int = 0) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    progress_service_pb2_grpc.add_ProgressServiceServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, bound


async def collect(address: str, after: int = 0, policy: ReconnectPolicy = FAST) -> list[int]:
    async with AsyncClient(address, reconnect=policy) as client:
        return [e.sequence async for e in client.watch("abc", after_sequence=after)]


async def test_resumes_after_unavailable_without_duplicates() -> None:
    servicer = scripted(
        [
            (([event(1), event(2)], [event(3)]), grpc.StatusCode.UNAVAILABLE),
            # A replay overlapping what was already delivered must not repeat it.
            (([event(2), event(3), event(4)], [final(5)]), None),
        ]
    )
    server, port = await serve(servicer)
    try:
        assert await collect(f"127.0.0.1:{port}") == [1, 2, 3, 4, 5]
        assert servicer.requests == [0, 3]
    finally:
        await server.stop(grace=None)


async def test_sync_client_resumes_too() -> None:
    servicer = scripted(
        [
            (([event(3)],), grpc.StatusCode.UNAVAILABLE),
            ((), grpc.StatusCode.UNAVAILABLE),
            (([event(4), final(5)],), None),
        ]
    )
    server, port = await serve(servicer)

    def watch() -> list[int]:
        with Client(f"127.0.0.1:{port}", reconnect=FAST) as client:
            return [e.sequence for e in client.watch("runs/abc", after_sequence=2)]

    try:
        assert await asyncio.to_thread(watch) == [3, 4, 5]
        assert servicer.requests == [2, 3, 3]
    finally:
        await server.stop(grace=None)


async def test_resumes_across_a_server_restart_on_the_same_port() -> None:
    first = scripted([(([event(1), event(2)],), None)])
    # The first server never ends its stream by itself: it is killed mid-stream.
    release = asyncio.Event()

    async def hold(
        request: progress_service_pb2.WatchRunRequest, context: WatchContext
    ) -> AsyncIterator[progress_service_pb2.WatchRunResponse]:
        first.requests.append(request.after_sequence)
        yield progress_service_pb2.WatchRunResponse(events=[event(1), event(2)])
        await release.wait()

    first.WatchRun = hold  # type: ignore[method-assign]
    server, port = await serve(first)
    second = scripted([(([event(3)], [final(4)]), None)])
    seen: list[int] = []

    async def consume() -> None:
        async with AsyncClient(f"127.0.0.1:{port}", reconnect=FAST) as client:
            async for e in client.watch("abc"):
                seen.append(e.sequence)

    task = asyncio.create_task(consume())
    await eventually(lambda: len(seen) >= 2, what="the first stream's events")
    await server.stop(grace=None)
    replacement, _ = await serve(second, port)
    try:
        await asyncio.wait_for(task, HANG_TIMEOUT)
        assert seen == [1, 2, 3, 4]
        assert second.requests[-1] == 2
    finally:
        release.set()
        await replacement.stop(grace=None)


async def test_clean_end_without_final_event() -> None:
    # Cut short after delivering events: resume; an empty clean stream: stop.
    servicer = scripted([(([event(1)],), None), ((), None)])
    server, port = await serve(servicer)
    try:
        assert await collect(f"127.0.0.1:{port}") == [1]
        assert servicer.requests == [0, 1]
    finally:
        await server.stop(grace=None)


async def test_gives_up_after_the_policy_time() -> None:
    servicer = scripted([])  # every call: UNAVAILABLE
    server, port = await serve(servicer)
    # The policy's own clock, a tenth of a second further at each failure: it gives up at the
    # fourth, whatever the machine's speed.
    ticks = itertools.count()
    policy = ReconnectPolicy(
        initial_delay=0.01, max_delay=0.05, give_up_after=0.3, clock=lambda: next(ticks) / 10
    )
    try:
        with pytest.raises(PodiumError) as caught:
            await asyncio.wait_for(collect(f"127.0.0.1:{port}", policy=policy), HANG_TIMEOUT)
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
        assert len(servicer.requests) == 4
    finally:
        await server.stop(grace=None)


@pytest.mark.parametrize("code", [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT])
async def test_other_errors_are_raised_at_once(code: grpc.StatusCode) -> None:
    servicer = scripted([((), code)])
    server, port = await serve(servicer)
    try:
        with pytest.raises(PodiumError) as caught:
            await collect(f"127.0.0.1:{port}")
        assert caught.value.code == code
        assert servicer.requests == [0]
    finally:
        await server.stop(grace=None)
