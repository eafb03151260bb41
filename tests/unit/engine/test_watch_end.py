"""podium.engine.progress.watch_run ends once it has sent the run's final
event, also when events recorded after it (a notification's) reached the
subscriber together with it: a subscriber that takes its events late takes
them in one batch."""

from __future__ import annotations

import asyncio

from podium.core.model import Event
from podium.core.states import EventType, RunState
from podium.engine.hub import EventHub
from podium.engine.progress import DeltaBatch, watch_run


class LiveRunLog:
    """What the log says of a run still running when the subscriber came."""

    async def run_status(self, run_id: str) -> tuple[RunState, int]:
        return RunState.RUNNING, 1

    async def read_events(self, run_id: str, after_sequence: int, limit: int) -> list[Event]:
        raise AssertionError("memory holds every event of this run")


def event(sequence: int, kind: EventType, state: RunState) -> Event:
    return Event("r", sequence, 0.0, kind, "wf", state)


def sequences(batch: list[Event] | DeltaBatch) -> list[int]:
    assert not isinstance(batch, DeltaBatch)  # nobody asked for deltas
    return [each.sequence for each in batch]


async def test_the_stream_ends_after_the_final_event_taken_with_later_ones() -> None:
    hub = EventHub()
    hub.expect("r", 1)
    hub.publish([event(1, EventType.RUN_STARTED, RunState.RUNNING)])
    stream = watch_run(hub, LiveRunLog(), "r", 0)
    assert sequences(await anext(stream)) == [1]
    # Before the subscriber takes again, the run ends and its notification is recorded.
    hub.publish([event(2, EventType.RUN_SUCCEEDED, RunState.SUCCEEDED)])
    hub.publish([event(3, EventType.NOTIFICATION_DELIVERED, RunState.SUCCEEDED)])
    async with asyncio.timeout(5):
        rest = [batch async for batch in stream]
    assert [sequences(batch) for batch in rest] == [[2, 3]]
    assert hub.subscribers_of("r") == 0


async def test_the_stream_ends_when_the_run_ended_while_it_caught_up() -> None:
    hub = EventHub()
    hub.expect("r", 1)
    hub.publish([event(1, EventType.RUN_STARTED, RunState.RUNNING)])
    hub.publish([event(2, EventType.RUN_SUCCEEDED, RunState.SUCCEEDED)])
    hub.publish([event(3, EventType.NOTIFICATION_DELIVERED, RunState.SUCCEEDED)])
    # The log said RUNNING (read before the run ended); memory has all of it.
    async with asyncio.timeout(5):
        batches = [batch async for batch in watch_run(hub, LiveRunLog(), "r", 0)]
    assert [sequence for batch in batches for sequence in sequences(batch)] == [1, 2, 3]
