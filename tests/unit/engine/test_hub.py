"""podium.engine.hub: a watched run's events are held once, in its feed, for
all its subscribers, whatever they read; a subscriber that never reads costs
its position only; a run watched by many is released in ticks, so that every
subscriber takes the same slices."""

from __future__ import annotations

import asyncio
from typing import Any

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
    notified = Event(
        "r", 5, 0.0, EventType.NOTIFICATION_DELIVERED, "wf", RunState.SUCCEEDED, attempt=1
    )
    hub.publish([notified])
    assert hub.remembered_runs == 0 and hub.finished_events_held == 0
    assert watcher.drain()[-1] is notified
    assert hub.recent("r", 4) is None  # read from the log instead


async def test_a_run_that_just_finished_replays_from_memory_notification_included() -> None:
    # A short run often ends before the watcher that called WatchRun right
    # after StartRun asks: its catch-up is served from memory, not the log.
    hub = EventHub()
    hub.publish([*item_events("r", 3), final_event("r", 4)])
    assert hub.remembered_runs == 0
    assert [event.sequence for event in hub.recent("r", 0) or []] == [1, 2, 3, 4]
    notified = Event(
        "r", 5, 0.0, EventType.NOTIFICATION_DELIVERED, "wf", RunState.SUCCEEDED, attempt=1
    )
    hub.publish([notified])
    # The held ring stays a suffix of the log: the later event extends it.
    assert [event.sequence for event in hub.recent("r", 3) or []] == [4, 5]
    hub.forget("r")  # deleted
    assert hub.recent("r", 0) is None and hub.finished_events_held == 0


async def test_finished_runs_hold_at_most_finished_events_oldest_out(monkeypatch: Any) -> None:
    monkeypatch.setattr(hub_module, "FINISHED_EVENTS", 10)
    hub = EventHub()
    for run in range(20):
        hub.publish([*item_events(f"r{run}", 3), final_event(f"r{run}", 4)])
        assert hub.finished_events_held <= 10
    assert hub.finished_events_held == 8  # the last two runs
    assert hub.recent("r17", 0) is None
    assert [event.sequence for event in hub.recent("r19", 2) or []] == [3, 4]
    assert [event.sequence for event in hub.recent("r18", 0) or []] == [1, 2, 3, 4]


async def test_an_unfinished_run_s_recent_events_are_held_until_its_end() -> None:
    hub = EventHub()
    hub.publish(item_events("r", 3))
    assert hub.remembered_runs == 1
    assert [event.sequence for event in hub.recent("r", 1) or []] == [2, 3]
    hub.publish([final_event("r", 4)])
    assert hub.remembered_runs == 0


async def test_a_run_expected_before_its_first_publish_is_answered_from_memory() -> None:
    # The run's first events are recorded, not yet committed: a watcher that
    # asks now waits for them live instead of reading the log, which could
    # not have them either.
    hub = EventHub()
    hub.expect("r", 1)
    assert hub.recent("r", 0) == []
    hub.publish(item_events("r", 2))
    assert [event.sequence for event in hub.recent("r", 0) or []] == [1, 2]


async def test_a_resumed_run_s_earlier_events_come_from_the_log() -> None:
    # Recovered after a restart: events 1-7 were published by the earlier process.
    hub = EventHub()
    hub.expect("r", 8)
    assert hub.recent("r", 3) is None
    assert hub.recent("r", 7) == []
    hub.publish(item_events("r", 2, first=8))
    assert hub.recent("r", 6) is None
    assert [event.sequence for event in hub.recent("r", 7) or []] == [8, 9]


async def test_a_lost_run_is_answered_by_the_log() -> None:
    hub = EventHub()
    hub.expect("r", 1)
    hub.publish(item_events("r", 2))
    hub.lose("r")
    assert hub.recent("r", 0) is None
    hub.expect("r", 3)  # its old executor still records: no ring again
    assert hub.recent("r", 2) is None and hub.remembered_runs == 0
