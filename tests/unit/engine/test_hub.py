"""podium.engine.hub: what a subscriber that never reads costs is its bounded
buffer, however many events its run publishes; and every subscriber holds the
same event objects, not copies."""

from __future__ import annotations

from podium.core.model import Event
from podium.core.states import EventType, RunState
from podium.engine.hub import EventHub


def item_events(run_id: str, count: int) -> list[Event]:
    return [
        Event(run_id, sequence, 0.0, EventType.ITEM_SUCCEEDED, "wf", RunState.RUNNING, "each")
        for sequence in range(1, count + 1)
    ]


async def test_a_subscriber_that_never_reads_holds_at_most_its_buffer() -> None:
    hub = EventHub()
    idle = hub.subscribe_run("r", capacity=100)
    events = item_events("r", 10_000)
    for start in range(0, len(events), 500):  # commits of 500 events, none read
        hub.publish(events[start : start + 500])
        assert len(idle.buffer) <= 100
    # Past its buffer it holds nothing and catches up from the log when it reads again.
    assert idle.lagging
    assert hub.buffered("r") == [0]


async def test_subscribers_share_each_event() -> None:
    hub = EventHub()
    first, second = hub.subscribe_run("r"), hub.subscribe_run("r")
    events = item_events("r", 10)
    hub.publish(events)
    drained = first.drain(), second.drain()
    assert all(a is b for a, b in zip(*drained, strict=True))
