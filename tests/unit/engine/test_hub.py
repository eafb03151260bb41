"""podium.engine.hub: what a subscriber that never reads costs is its bounded
buffer, however many events its run publishes; and every subscriber holds the
same event objects, not copies."""

from __future__ import annotations

import asyncio

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


# -- pauses: a run watched by many sends each subscriber fewer, fuller messages -------------

FOREVER = 3600.0


def final_event(run_id: str, sequence: int) -> Event:
    return Event(run_id, sequence, 0.0, EventType.RUN_SUCCEEDED, "wf", RunState.SUCCEEDED)


async def test_the_final_event_ends_a_pause_at_once() -> None:
    hub = EventHub()
    subscription = hub.subscribe_run("r")
    pausing = asyncio.create_task(subscription.pause(FOREVER))
    await asyncio.sleep(0)
    hub.publish(item_events("r", 3))
    await asyncio.sleep(0)
    assert not pausing.done()  # other events accumulate meanwhile
    hub.publish([final_event("r", 4)])
    async with asyncio.timeout(10):  # a pause not ended would last an hour
        await pausing
    assert [event.sequence for event in subscription.drain()] == [1, 2, 3, 4]


async def test_no_pause_once_the_final_event_is_in() -> None:
    hub = EventHub()
    subscription = hub.subscribe_run("r")
    hub.publish([final_event("r", 1)])
    async with asyncio.timeout(10):
        await subscription.pause(FOREVER)


async def test_closing_a_subscription_ends_its_pause() -> None:
    hub = EventHub()
    subscription = hub.subscribe_run("r")
    pausing = asyncio.create_task(subscription.pause(FOREVER))
    await asyncio.sleep(0)
    hub.close_all()
    async with asyncio.timeout(10):
        await pausing
    assert hub.subscribers_of("r") == 0


async def test_half_a_buffer_ends_a_pause_before_the_subscriber_lags() -> None:
    hub = EventHub()
    subscription = hub.subscribe_run("r", capacity=100)
    pausing = asyncio.create_task(subscription.pause(FOREVER))
    await asyncio.sleep(0)
    events = item_events("r", 60)
    hub.publish(events[:40])
    await asyncio.sleep(0)
    assert not pausing.done()
    hub.publish(events[40:])
    async with asyncio.timeout(10):
        await pausing
    assert not subscription.lagging
    assert len(subscription.drain()) == 60
