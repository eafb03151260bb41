"""Live fan-out of committed events to subscribers.

The engine never waits for a subscriber: publishing records the events and
returns. Memory is bounded per run, not per subscriber:

- A run's subscribers (WatchRun) share one feed, the run's last FEED_EVENTS
  committed events held once for all of them. Each subscriber only keeps its
  position in it. A run watched by many is released to its subscribers in
  ticks (see RunFeed.publish), so that they all send the same slices of it:
  the same response bytes (encoded once, see server/event_encoding.py), fewer
  and fuller messages, and a few wake-ups per tick instead of one per
  subscriber and commit. A subscriber whose position falls out of the feed
  (it has not taken its events while FEED_EVENTS more were committed) is cut
  off by the watcher (progress.py) with a resumable status.
- A subscriber of many runs (WatchRuns) has a bounded buffer of its own; one
  that overflows it is marked `lagging` and cut off.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

from podium.core.model import Event, OutputDelta

# WatchRuns: events buffered per subscriber.
DEFAULT_BUFFER = 2048
# WatchRun: committed events a watched run's feed holds for its subscribers;
# one further behind than that is cut off (it resumes from the log).
FEED_EVENTS = 4096
# Output deltas held per subscriber; past it the newest are dropped (the final
# output is an event, never lost) until the subscriber takes them.
DELTA_BUFFER = 1024
# Committed events kept per unfinished run, so that a watcher that connects
# right after StartRun (the common case) replays from memory, not SQLite.
RECENT_EVENTS = 64
# ... and, in all, at most this many events of runs that just finished: a
# short run often ends before its watcher (who called WatchRun as soon as
# StartRun returned) has asked, and that watcher would otherwise read the
# log. Oldest finished run first out.
FINISHED_EVENTS = 4096
# A run watched by many is released at most once per PACE_PER_SUBSCRIBER
# times its other subscribers (at most MAX_PACE). A message costs the event
# loop about as much whatever it holds, so 200 subscribers each sent a message
# per commit would cost the run several times its own work; paced, each
# message carries many commits' events. A lone subscriber is not paced, and
# the final event is released at once.
PACE_PER_SUBSCRIBER = 0.0005
MAX_PACE = 0.1
# Subscribers woken per turn of the event loop at a release: between two
# groups the loop polls I/O, so the commit the engine waits for is handled
# before the rest of the fan-out writes, not after all of them.
WAKE_GROUP = 16


class RunSubscription:
    """One WatchRun subscriber: its wake-up, and its output deltas if it asked."""

    __slots__ = ("_hub", "closed", "deltas", "feed", "wake")

    def __init__(self, hub: EventHub, feed: RunFeed) -> None:
        self._hub = hub
        self.feed = feed
        self.wake = asyncio.Event()
        self.closed = False
        # None: this subscriber did not ask for output deltas.
        self.deltas: deque[OutputDelta] | None = None

    def push_delta(self, delta: OutputDelta) -> None:
        if self.deltas is not None and len(self.deltas) < DELTA_BUFFER:
            self.deltas.append(delta)
            self.wake.set()

    def drain_deltas(self) -> list[OutputDelta]:
        if not self.deltas:
            return []
        deltas = list(self.deltas)
        self.deltas.clear()
        return deltas

    async def wait(self) -> None:
        """Until the feed released events, deltas came, or the subscription closed;
        then the next wait waits again."""
        await self.wake.wait()
        self.wake.clear()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._hub._remove_run(self)
            self.wake.set()


class RunFeed:
    """A watched run's recent committed events, held once for all its subscribers."""

    __slots__ = (
        "_events",
        "_first",
        "_last_release",
        "_shared",
        "_timer",
        "capacity",
        "released",
        "run_id",
        "subscribers",
    )

    def __init__(self, run_id: str, capacity: int) -> None:
        self.run_id = run_id
        self.capacity = capacity
        # Consecutive events, the first of them numbered _first.
        self._events: list[Event] = []
        self._first = 0
        # The last sequence subscribers may take (see publish).
        self.released = 0
        self.subscribers: dict[RunSubscription, None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._last_release = float("-inf")
        # The last slice taken, for the subscribers that take the same one.
        self._shared: tuple[int, int, list[Event]] | None = None

    @property
    def head(self) -> int:
        """The last sequence published to the feed (0: none yet)."""
        return self._events[-1].sequence if self._events else 0

    def covers(self, after: int) -> bool:
        """Whether the feed holds the event right after `after`, if there is one yet."""
        return bool(self._events) and self._first <= after + 1

    def take(self, after: int, upto: int | None = None) -> list[Event] | None:
        """The events after `after` up to `upto` (default: what was released);
        None when the feed no longer holds the event right after `after`."""
        end = self.released if upto is None else upto
        if after >= end:
            return []
        if not self.covers(after):
            return None
        shared = self._shared
        if shared is not None and shared[0] == after and shared[1] == end:
            return shared[2]
        events = self._events[after + 1 - self._first : end + 1 - self._first]
        self._shared = (after, end, events)
        return events

    def publish(self, events: list[Event]) -> None:
        """Adds a commit's events of the run and releases them now or at the next tick.

        A tick is due `pace` after the last one; it is taken at the first commit
        after that, which is when the engine has just handed the store its next
        batch and waits for the disk (see podium.store.group_commit), so the
        fan-out writes overlap that wait. The timer is only the fallback of a
        run that commits nothing more for a while."""
        self._extend(events)
        loop = asyncio.get_running_loop()
        now = loop.time()
        others = len(self.subscribers) - 1
        pace = min(MAX_PACE, others * PACE_PER_SUBSCRIBER) if others > 0 else 0.0
        due = self._last_release + pace
        if now >= due or events[-1].is_final or self.head - self.released >= self.capacity // 2:
            self.release()
        elif self._timer is None:
            self._timer = loop.call_later(due - now + pace / 2, self.release)

    def release(self) -> None:
        """Lets subscribers take everything published so far, and wakes them."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.head == self.released:
            return
        self.released = self.head
        loop = asyncio.get_running_loop()
        self._last_release = loop.time()
        subscribers = list(self.subscribers)
        _wake_in_groups(loop, subscribers, 0)

    def _extend(self, events: list[Event]) -> None:
        held = self._events
        if held and events[0].sequence != held[-1].sequence + 1:
            # Never serve across a gap (defensive: a run's commits are
            # consecutive): whoever is behind it resumes from the log.
            held.clear()
        if not held:
            self._first = events[0].sequence
        held.extend(events)
        excess = len(held) - self.capacity
        if excess > 0:
            del held[:excess]
            self._first += excess

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def __len__(self) -> int:
        return len(self._events)


def _wake_in_groups(
    loop: asyncio.AbstractEventLoop, subscribers: list[RunSubscription], start: int
) -> None:
    for subscription in subscribers[start : start + WAKE_GROUP]:
        subscription.wake.set()
    if start + WAKE_GROUP < len(subscribers):
        loop.call_soon(_wake_in_groups, loop, subscribers, start + WAKE_GROUP)


class Subscription:
    """One WatchRuns subscriber: a bounded buffer of the events it matches."""

    __slots__ = ("_hub", "buffer", "capacity", "closed", "lagging", "matches", "wake")

    def __init__(
        self, hub: EventHub, capacity: int, matches: Callable[[Event], bool] | None
    ) -> None:
        self._hub = hub
        self.capacity = capacity
        self.matches = matches
        self.buffer: deque[Event] = deque()
        self.wake = asyncio.Event()
        self.lagging = False
        self.closed = False

    def push(self, event: Event) -> None:
        if self.lagging or (self.matches is not None and not self.matches(event)):
            return
        if len(self.buffer) >= self.capacity:
            self.buffer.clear()
            self.lagging = True
        else:
            self.buffer.append(event)
        self.wake.set()

    def drain(self) -> list[Event]:
        events = list(self.buffer)
        self.buffer.clear()
        self.wake.clear()
        return events

    async def wait(self) -> None:
        await self.wake.wait()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._hub._all.discard(self)
            self.wake.set()


class EventHub:
    def __init__(self, feed_events: int = FEED_EVENTS) -> None:
        # What a watched run's feed holds (feeds made from now on).
        self.feed_events = feed_events
        self._feeds: dict[str, RunFeed] = {}
        self._all: set[Subscription] = set()
        self._recent: dict[str, deque[Event]] = {}
        # Runs whose ring was opened before its first event was published:
        # every event after this sequence will reach the ring (see expect).
        self._floors: dict[str, int] = {}
        # The recent events of runs that finished, newest run last (FINISHED_EVENTS).
        self._finished: OrderedDict[str, deque[Event]] = OrderedDict()
        self._finished_events = 0
        # Subscribers that asked for output deltas, by run.
        self._delta_runs: dict[str, int] = {}
        # Cluster mode: runs this server lost to another; what it recorded for
        # them was not committed, and only the owner's events (relayed) count.
        self._lost: set[str] = set()
        # WatchRun subscribers cut off for falling out of their run's feed, since start.
        self.cut_offs = 0

    def subscribe_run(self, run_id: str, *, deltas: bool = False) -> RunSubscription:
        """A run's committed events (through its feed); with `deltas`, its output deltas too."""
        feed = self._feeds.get(run_id)
        if feed is None:
            feed = self._feeds[run_id] = RunFeed(run_id, self.feed_events)
        subscription = RunSubscription(self, feed)
        if deltas:
            subscription.deltas = deque()
            self._delta_runs[run_id] = self._delta_runs.get(run_id, 0) + 1
        feed.subscribers[subscription] = None
        return subscription

    def publish_delta(self, delta: OutputDelta) -> None:
        """Live only: to the run's subscribers that asked for deltas, now."""
        if delta.run_id not in self._delta_runs:
            return
        feed = self._feeds.get(delta.run_id)
        for subscription in feed.subscribers if feed is not None else ():
            subscription.push_delta(delta)

    def wants_deltas(self, run_id: str) -> bool:
        """Whether anyone listens to the run's deltas (else none is made)."""
        return run_id in self._delta_runs

    def subscribe_all(
        self, matches: Callable[[Event], bool] | None = None, capacity: int = DEFAULT_BUFFER
    ) -> Subscription:
        subscription = Subscription(self, capacity, matches)
        self._all.add(subscription)
        return subscription

    def lose(self, run_id: str) -> None:
        """Cluster mode: this server lost the run; its own events of it are dropped."""
        self._lost.add(run_id)
        # What it held may miss the new owner's events: the log answers now.
        self._recent.pop(run_id, None)
        self._floors.pop(run_id, None)

    def expect(self, run_id: str, sequence: int) -> None:
        """An event of an unfinished run was recorded (not yet committed):
        every later one of this server's is published here in order, so from
        now on a watcher asking for what follows sequence - 1 is answered from
        memory (and waits for the commit), not from the log. A watcher that
        calls WatchRun right after StartRun returned, before the commit that
        made the run has been published, is the common case."""
        if run_id not in self._recent and run_id not in self._lost:
            self._recent[run_id] = deque(maxlen=RECENT_EVENTS)
            self._floors[run_id] = sequence - 1

    def regain(self, run_id: str) -> None:
        """Cluster mode: this server owns the run (again)."""
        self._lost.discard(run_id)

    def publish(self, events: Iterable[Event], *, remote: bool = False) -> None:
        """Called with committed events only, in commit order; `remote`: events
        another server committed (cluster mode), relayed from the database."""
        if self._lost and not remote:
            events = [event for event in events if event.run_id not in self._lost]
        recent = self._recent
        by_run: dict[str, list[Event]] = {}
        for event in events:
            ring = recent.get(event.run_id)
            if ring is None and not event.run_state.is_final:
                ring = recent[event.run_id] = deque(maxlen=RECENT_EVENTS)
            if ring is not None:
                ring.append(event)
            elif event.run_id in self._finished:
                # A finished run's later events (its notification's) extend
                # its ring while it is held; they never start one.
                self._hold_finished(event.run_id, [event])
            by_run.setdefault(event.run_id, []).append(event)
            for subscription in self._all:
                subscription.push(event)
            if event.is_final:
                self._floors.pop(event.run_id, None)
                ended = recent.pop(event.run_id, None)
                if ended is not None:
                    self._hold_finished(event.run_id, ended)
        feeds = self._feeds
        for run_id, run_events in by_run.items():
            feed = feeds.get(run_id)
            if feed is not None:
                feed.publish(run_events)

    def recent(self, run_id: str, after_sequence: int) -> list[Event] | None:
        """The committed events after `after_sequence` if memory still holds
        all of them, else None (read the log)."""
        ring = self._recent.get(run_id)
        if ring is None:
            ring = self._finished.get(run_id)
        if not ring:
            # Opened by expect and nothing published yet: what follows the
            # floor is still to come, what precedes it is in the log.
            floor = self._floors.get(run_id) if ring is not None else None
            return [] if floor is not None and after_sequence >= floor else None
        if ring[0].sequence > after_sequence + 1:
            return None
        return [event for event in ring if event.sequence > after_sequence]

    def _hold_finished(self, run_id: str, events: Iterable[Event]) -> None:
        ring = self._finished.get(run_id)
        if ring is None:
            ring = self._finished[run_id] = deque(maxlen=RECENT_EVENTS)
        before = len(ring)
        ring.extend(events)
        self._finished_events += len(ring) - before
        while self._finished_events > FINISHED_EVENTS:
            _, oldest = self._finished.popitem(last=False)
            self._finished_events -= len(oldest)

    def forget(self, run_id: str) -> None:
        """The run was deleted: memory must not answer for it any more."""
        ring = self._finished.pop(run_id, None)
        if ring is not None:
            self._finished_events -= len(ring)

    def close_all(self) -> None:
        for feed in list(self._feeds.values()):
            for subscription in list(feed.subscribers):
                subscription.close()
        for watcher in list(self._all):
            watcher.close()

    def subscribers_of(self, run_id: str) -> int:
        """How many subscriptions watch the run."""
        feed = self._feeds.get(run_id)
        return len(feed.subscribers) if feed is not None else 0

    def held(self, run_id: str) -> int:
        """Events the run's feed holds for its subscribers (a test checks the bound)."""
        feed = self._feeds.get(run_id)
        return len(feed) if feed is not None else 0

    @property
    def remembered_runs(self) -> int:
        """Unfinished runs whose recent events memory holds (a test checks)."""
        return len(self._recent)

    @property
    def finished_events_held(self) -> int:
        """Events of finished runs held for late watchers (at most FINISHED_EVENTS)."""
        return self._finished_events

    @property
    def subscriber_count(self) -> int:
        """Live subscriptions (a test waits on it instead of sleeping)."""
        return len(self._all) + sum(len(f.subscribers) for f in self._feeds.values())

    def _remove_run(self, subscription: RunSubscription) -> None:
        feed = subscription.feed
        run_id = feed.run_id
        if subscription.deltas is not None:
            left = self._delta_runs.get(run_id, 0) - 1
            if left > 0:
                self._delta_runs[run_id] = left
            else:
                self._delta_runs.pop(run_id, None)
        feed.subscribers.pop(subscription, None)
        if not feed.subscribers and self._feeds.get(run_id) is feed:
            feed.close()
            del self._feeds[run_id]
