"""Token streaming: a streamed step's answer reaches the live subscribers that
ask for it as output deltas, in order, while the persisted event sequence
stays gap-free; deltas are never replayed, and the final output is an event."""

from __future__ import annotations

import asyncio
from pathlib import Path

from podium.client import AsyncClient, Client
from podium.testing import (
    HANG_TIMEOUT,
    HoldAgent,
    Stubs,
    collect_events,
    create_workflow,
    eventually,
    plain,
    plugins_with,
    serving,
    start_run,
)
from podium.v1 import event_pb2, progress_service_pb2, run_pb2

PROMPT = " ".join(f"word{i}" for i in range(40))


def _spec(stream: bool) -> dict[str, object]:
    # `gate` holds the run until the test's subscribers are connected: a
    # subscriber gets the deltas streamed while it listens, not earlier ones.
    return {
        "steps": [
            {"id": "gate", "agent": "hold"},
            {
                "id": "answer",
                "agent": "llm",
                "dependsOn": ["gate"],
                "config": {
                    "prompt": PROMPT,
                    "stream": stream,
                    "options": {"latency_ms": 200},
                },
            },
        ]
    }


async def _watch(
    stubs: Stubs, run: str, *, deltas: bool, after: int = 0
) -> tuple[list[event_pb2.RunEvent], list[progress_service_pb2.OutputDelta], list[str]]:
    """Events, deltas and the order in which the two kinds arrived."""
    events: list[event_pb2.RunEvent] = []
    streamed: list[progress_service_pb2.OutputDelta] = []
    order: list[str] = []

    async def read() -> None:
        request = progress_service_pb2.WatchRunRequest(
            run=run, after_sequence=after, include_output_deltas=deltas
        )
        async for response in stubs.progress.WatchRun(request):
            assert not (response.events and response.output_deltas)
            events.extend(response.events)
            streamed.extend(response.output_deltas)
            order.extend("event" for _ in response.events)
            order.extend("delta" for _ in response.output_deltas)

    await asyncio.wait_for(read(), HANG_TIMEOUT)
    return events, streamed, order


async def test_deltas_reach_a_live_subscriber_in_order_and_are_never_replayed(
    tmp_path: Path,
) -> None:
    hold = HoldAgent()
    async with serving(str(tmp_path / "podium.db"), plugins=plugins_with([hold])) as (
        server,
        stubs,
    ):
        await create_workflow(stubs, "w", _spec(stream=True))
        run = await start_run(stubs, "w")
        watching = asyncio.gather(
            _watch(stubs, run.name, deltas=True), _watch(stubs, run.name, deltas=False)
        )
        hub = server.engine.hub
        await eventually(lambda: hub.subscriber_count == 2, what="both subscribed")
        hold.release()
        live, without = await watching
        replay = await _watch(stubs, run.name, deltas=True)
    events, deltas, order = live
    assert [d.index for d in deltas] == list(range(1, len(deltas) + 1))
    assert len(deltas) > 5
    assert {(d.step_id, d.item, d.attempt) for d in deltas} == {("answer", -1, 1)}
    final = next(
        e
        for e in events
        if e.type == event_pb2.RUN_EVENT_TYPE_STEP_SUCCEEDED and e.step_id == "answer"
    )
    text = plain(final.output)["text"]
    assert "".join(d.text for d in deltas) == text
    # The text grows before the step's final event.
    last_delta = len(order) - 1 - order[::-1].index("delta")
    events_before_last_delta = order[:last_delta].count("event")
    assert events_before_last_delta <= events.index(final)
    assert order[-1] == "event"
    # The persisted sequence is gap-free, and the same for every subscriber.
    sequences = [e.sequence for e in events]
    assert sequences == list(range(1, len(sequences) + 1))
    assert [e.sequence for e in without[0]] == sequences and without[1] == []
    # Replay (the run is over): the events again, no delta.
    assert [e.sequence for e in replay[0]] == sequences and replay[1] == []


async def test_a_step_that_does_not_stream_sends_no_delta(tmp_path: Path) -> None:
    hold = HoldAgent()
    async with serving(str(tmp_path / "podium.db"), plugins=plugins_with([hold])) as (
        server,
        stubs,
    ):
        await create_workflow(stubs, "w", _spec(stream=False))
        run = await start_run(stubs, "w")
        watching = asyncio.ensure_future(_watch(stubs, run.name, deltas=True))
        await eventually(lambda: server.engine.hub.subscriber_count == 1, what="subscribed")
        hold.release()
        events, deltas, _ = await watching
        finished = await collect_events(stubs, run.name)
    assert deltas == []
    assert [e.sequence for e in events] == [e.sequence for e in finished]
    assert finished[-1].run_state == run_pb2.RUN_STATE_SUCCEEDED


async def test_the_python_client_yields_deltas_between_events(tmp_path: Path) -> None:
    hold = HoldAgent()
    async with serving(str(tmp_path / "podium.db"), plugins=plugins_with([hold])) as (
        server,
        stubs,
    ):
        await create_workflow(stubs, "w", _spec(stream=True))
        run = await start_run(stubs, "w")
        with Client(f"127.0.0.1:{server.port}", timeout=None) as client:
            watching = asyncio.ensure_future(
                asyncio.to_thread(lambda: list(client.watch_with_deltas(run.name)))
            )
            await eventually(lambda: server.engine.hub.subscriber_count == 1, what="subscribed")
            hold.release()
            received = await watching
            plain_watch = await asyncio.to_thread(lambda: list(client.watch(run.name)))
    deltas = [x for x in received if isinstance(x, progress_service_pb2.OutputDelta)]
    events = [x for x in received if isinstance(x, event_pb2.RunEvent)]
    assert deltas and [d.index for d in deltas] == list(range(1, len(deltas) + 1))
    assert [e.sequence for e in events] == [e.sequence for e in plain_watch]
    assert all(isinstance(x, event_pb2.RunEvent) for x in plain_watch)


async def test_the_async_client_yields_deltas_too(tmp_path: Path) -> None:
    hold = HoldAgent()
    async with serving(str(tmp_path / "podium.db"), plugins=plugins_with([hold])) as (
        server,
        stubs,
    ):
        await create_workflow(stubs, "w", _spec(stream=True))
        run = await start_run(stubs, "w")
        async with AsyncClient(f"127.0.0.1:{server.port}", timeout=None) as client:

            async def collect() -> list[object]:
                return [item async for item in client.watch_with_deltas(run.name)]

            watching = asyncio.ensure_future(collect())
            await eventually(lambda: server.engine.hub.subscriber_count == 1, what="subscribed")
            hold.release()
            received = await watching
            events = [event async for event in client.watch(run.name)]
    deltas = [x for x in received if isinstance(x, progress_service_pb2.OutputDelta)]
    assert deltas and [d.index for d in deltas] == list(range(1, len(deltas) + 1))
    assert [e.sequence for e in events] == [
        x.sequence for x in received if isinstance(x, event_pb2.RunEvent)
    ]
