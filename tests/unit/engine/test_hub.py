"""podium.engine.hub: a watched run's events are held once, in its feed, for
all its subscribers, whatever they read; a subscriber that never reads costs
its position only; a run watched by many is released in ticks, so that every
subscriber takes the same slices."""

from __future__ import annotations

import asyncio

from podium.core.model import Event
from podium.core.states import EventType, RunState
from podium.engine import hub as hub_module
from podium.engine.hub import EventHub


def item_events(run_id: str, count: int, first: int = 1) -> list[Event]:
    return [
        Event(run_id, sequence, 0.0, EventType.ITEM_SUCCEEDED, "wf", RunState.RUNNING, "each")
        for sequence in range(first, first + count)
    ]


def final_event(run_id: str, sequence: int) -> Event:
    return Event(run_id, sequence, 0.0, EventType.RUN_SUCCEEDED, "wf", RunState.SUCCEEDED)


async def test_subscribers_that_never_read_cost_one_bounded_feed() -> None:
    hub = EventHub(feed_events=100)
    idle = [hub.subscribe_run("r") for _ in range(50)]
    events = item_events("r", 10_000)
    for start in range(0, len(events), 500):  # commits of 500 events, none read
        hub.publish(events[start : start + 500])
        assert hub.held("r") <= 100
    # Whoever is still at the start fell out of the feed: the watcher cuts it off.
    assert all(subscription.feed.take(0) is None for subscription in idle)
    assert idle[0].feed.take(9_900) == events[9_900:]


async def test_subscribers_at_the_same_position_take_the_same_slice() -> None:
    hub = EventHub()
    first, second = hub.subscribe_run("r"), hub.subscribe_run("r")
    assert first.feed is second.feed
    hub.publish(item_events("r", 10))
    taken = first.feed.take(0), second.feed.take(0)
    assert taken[0] is taken[1]
    assert [event.sequence for event in taken[0] or []] == list(range(1, 11))
    assert first.feed.take(4) == (taken[0] or [])[4:]


async def test_a_lone_subscriber_is_released_every_commit_at_once() -> None:
    hub = EventHub()
    subscription = hub.subscribe_run("r")
    for start in (1, 4, 7):
        hub.publish(item_events("r", 3, start))
        assert subscription.feed.released == start + 2
        async with asyncio.timeout(10):
            await subscription.wait()


async def test_a_run_watched_by_many_is_released_in_ticks() -> None:
    hub = EventHub()
    subscriptions = [hub.subscribe_run("r") for _ in range(40)]
    feed = subscriptions[0].feed
    hub.publish(item_events("r", 3))
    assert feed.released == 3  # the first commit goes at once
    hub.publish(item_events("r", 3, 4))
    assert feed.released == 3  # the next ones wait for the tick
    assert feed.take(3) == []
    async with asyncio.timeout(10):  # the tick comes without another commit
        while feed.released < 6:
            await asyncio.sleep(hub_module.MAX_PACE / 10)
    async with asyncio.timeout(10):  # every subscriber is woken, a group per loop turn
        await asyncio.gather(*(s.wait() for s in subscriptions))


async def test_the_final_event_is_released_at_once() -> None:
    hub = EventHub()
    subscriptions = [hub.subscribe_run("r") for _ in range(40)]
    feed = subscriptions[0].feed
    hub.publish(item_events("r", 3))
    hub.publish(item_events("r", 3, 4))
    hub.publish([final_event("r", 7)])
    assert feed.released == 7
    assert [event.sequence for event in feed.take(3) or []] == [4, 5, 6, 7]


async def test_half_a_feed_is_released_before_anyone_falls_out() -> None:
    hub = EventHub(feed_events=100)
    subscriptions = [hub.subscribe_run("r") for _ in range(40)]
    feed = subscriptions[0].feed
    hub.publish(item_events("r", 1))
    hub.publish(item_events("r", 40, 2))
    assert feed.released == 1
    hub.publish(item_events("r", 20, 42))
    assert feed.released == 61


async def test_a_gap_is_never_served_across() -> None:
    hub = EventHub()
    subscription = hub.subscribe_run("r")
    hub.publish(item_events("r", 3))
    hub.publish(item_events("r", 3, 10))  # 4..9 never published here
    assert subscription.feed.take(3) is None
    assert [e.sequence for e in subscription.feed.take(9) or []] == [10, 11, 12]


async def test_the_last_subscriber_leaving_drops_the_feed() -> None:
    hub = EventHub()
    subscriptions = [hub.subscribe_run("r") for _ in range(3)]
    hub.publish(item_events("r", 3))
    hub.publish(item_events("r", 3, 4))  # a tick pending
    for subscription in subscriptions:
        subscription.close()
    assert hub.subscribers_of("r") == 0
    assert hub.held("r") == 0


async def test_closing_wakes_the_subscriber() -> None:
    hub = EventHub()
    subscription = hub.subscribe_run("r")
    waiting = asyncio.create_task(subscription.wait())
    await asyncio.sleep(0)
    hub.close_all()
    async with asyncio.timeout(10):
        await waiting
    assert subscription.closed
    assert hub.subscriber_count == 0


async def test_a_finished_run_s_later_events_leave_nothing_held() -> None:
    # A notification's events come after the run's final one: they reach
    # subscribers, but start no ring of recent events that nothing would remove.
    hub = EventHub()
    watcher = hub.subscribe_all()
    hub.publish([*item_events("r", 3), final_event("r", 4)])
    assert hub.remembered_runs == 0
    notified = Event(
        "r", 5, 0.0, EventType.NOTIFICATION_DELIVERED, "wf", RunState.SUCCEEDED, attempt=1
    )
    hub.publish([notified])
    assert hub.remembered_runs == 0
    assert watcher.drain()[-1] is notified
    assert hub.recent("r", 4) is None  # read from the log instead


async def test_an_unfinished_run_s_recent_events_are_held_until_its_end() -> None:
    hub = EventHub()
    hub.publish(item_events("r", 3))
    assert hub.remembered_runs == 1
    assert [event.sequence for event in hub.recent("r", 1) or []] == [2, 3]
    hub.publish([final_event("r", 4)])
    assert hub.remembered_runs == 0
