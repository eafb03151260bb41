"""Live fan-out of committed events to subscribers.

The engine never waits for a subscriber: publishing appends to each
subscriber's bounded buffer and returns. A subscriber whose buffer overflows is
marked `lagging` and its buffer dropped; a run watcher then catches up from the
event log (see progress.py), so memory stays bounded whatever a client does.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable

from podium.core.model import Event, OutputDelta

DEFAULT_BUFFER = 2048
# Output deltas held per subscriber; past it the newest are dropped (the final
# output is an event, never lost) until the subscriber drains its buffer.
DELTA_BUFFER = 1024
# Committed events kept per unfinished run, so that a watcher that connects
# right after StartRun (the common case) replays from memory, not SQLite.
RECENT_EVENTS = 64


class Subscription:
    __slots__ = (
        "_hub",
        "_key",
        "_pause",
        "buffer",
        "capacity",
        "closed",
        "deltas",
        "final",
        "lagging",
        "matches",
        "wake",
    )

    def __init__(
        self,
        hub: EventHub,
        key: str | None,
        capacity: int,
        matches: Callable[[Event], bool] | None,
    ) -> None:
        self._hub = hub
        self._key = key
        self.capacity = capacity
        self.matches = matches
        self.buffer: deque[Event] = deque()
        self.wake = asyncio.Event()
        self.lagging = False
        self.closed = False
        # The run's final event has been pushed: a pause ends at once.
        self.final = False
        self._pause: asyncio.Future[None] | None = None
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

    def push(self, event: Event) -> None:
        if self.lagging or (self.matches is not None and not self.matches(event)):
            return
        if len(self.buffer) >= self.capacity:
            self.buffer.clear()
            self.lagging = True
        else:
            self.buffer.append(event)
        self.wake.set()

    def push_all(self, events: list[Event]) -> None:
        """As `push` for each of a run's committed events, in one go (a run's
        subscribers take every event of the run, no filter)."""
        if self.lagging:
            return
        if len(self.buffer) + len(events) > self.capacity:
            self.buffer.clear()
            self.lagging = True
        else:
            self.buffer.extend(events)
        if events and events[-1].is_final:
            self.final = True
        pause = self._pause
        if pause is not None and (self.final or len(self.buffer) * 2 >= self.capacity):
            # The final event, or half a buffer: send now rather than lag
            # (a lagging subscriber catches up from the log, which costs more).
            _end_pause(pause)
        self.wake.set()

    async def pause(self, seconds: float) -> None:
        """Lets events accumulate for up to `seconds`, or until the run's
        final event arrives, half the buffer is full, or the subscription closes."""
        if self.final or self.closed or seconds <= 0:
            return
        loop = asyncio.get_running_loop()
        pause = self._pause = loop.create_future()
        timer = loop.call_later(seconds, _end_pause, pause)
        try:
            await pause
        finally:
            timer.cancel()
            self._pause = None

    def drain(self) -> list[Event]:
        events = list(self.buffer)
        self.buffer.clear()
        self.wake.clear()
        return events

    async def wait(self) -> None:
        await self.wake.wait()

    def reset_lag(self) -> None:
        self.lagging = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._hub._remove(self._key, self)
            self.wake.set()
            if self._pause is not None:
                _end_pause(self._pause)


def _end_pause(pause: asyncio.Future[None]) -> None:
    if not pause.done():
        pause.set_result(None)


class EventHub:
    def __init__(self) -> None:
        self._by_run: dict[str, set[Subscription]] = {}
        self._all: set[Subscription] = set()
        self._recent: dict[str, deque[Event]] = {}
        # Subscribers that asked for output deltas, by run.
        self._delta_runs: dict[str, int] = {}
        # Cluster mode: runs this server lost to another; what it recorded for
        # them was not committed, and only the owner's events (relayed) count.
        self._lost: set[str] = set()

    def subscribe_run(
        self, run_id: str, capacity: int = DEFAULT_BUFFER, *, deltas: bool = False
    ) -> Subscription:
        """A run's committed events; with `deltas`, its output deltas too."""
        subscription = Subscription(self, run_id, capacity, None)
        if deltas:
            subscription.deltas = deque()
            self._delta_runs[run_id] = self._delta_runs.get(run_id, 0) + 1
        self._by_run.setdefault(run_id, set()).add(subscription)
        return subscription

    def publish_delta(self, delta: OutputDelta) -> None:
        """Live only: to the run's subscribers that asked for deltas, now."""
        if delta.run_id not in self._delta_runs:
            return
        for subscription in self._by_run.get(delta.run_id, ()):
            subscription.push_delta(delta)

    def wants_deltas(self, run_id: str) -> bool:
        """Whether anyone listens to the run's deltas (else none is made)."""
        return run_id in self._delta_runs

    def subscribe_all(
        self, matches: Callable[[Event], bool] | None = None, capacity: int = DEFAULT_BUFFER
    ) -> Subscription:
        subscription = Subscription(self, None, capacity, matches)
        self._all.add(subscription)
        return subscription

    def lose(self, run_id: str) -> None:
        """Cluster mode: this server lost the run; its own events of it are dropped."""
        self._lost.add(run_id)

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
            if ring is None:
                ring = recent[event.run_id] = deque(maxlen=RECENT_EVENTS)
            ring.append(event)
            by_run.setdefault(event.run_id, []).append(event)
            for subscription in self._all:
                subscription.push(event)
            if event.is_final:
                del recent[event.run_id]
        # A run's subscribers get its events of the batch in one go: with 200
        # subscribers, a push per subscriber and event costs the run its pace.
        for run_id, run_events in by_run.items():
            for subscription in self._by_run.get(run_id, ()):
                subscription.push_all(run_events)

    def recent(self, run_id: str, after_sequence: int) -> list[Event] | None:
        """The committed events after `after_sequence` if memory still holds
        all of them, else None (read the log)."""
        ring = self._recent.get(run_id)
        if not ring or ring[0].sequence > after_sequence + 1:
            return None
        return [event for event in ring if event.sequence > after_sequence]

    def close_all(self) -> None:
        for subscriptions in list(self._by_run.values()):
            for subscription in list(subscriptions):
                subscription.close()
        for subscription in list(self._all):
            subscription.close()

    def subscribers_of(self, run_id: str) -> int:
        """How many subscriptions watch the run."""
        return len(self._by_run.get(run_id, ()))

    def buffered(self, run_id: str) -> list[int]:
        """Events held for each subscriber of a run (a test checks the bound)."""
        return [len(s.buffer) for s in self._by_run.get(run_id, ())]

    @property
    def subscriber_count(self) -> int:
        """Live subscriptions (a test waits on it instead of sleeping)."""
        return len(self._all) + sum(len(s) for s in self._by_run.values())

    def _remove(self, key: str | None, subscription: Subscription) -> None:
        if key is None:
            self._all.discard(subscription)
            return
        if subscription.deltas is not None:
            left = self._delta_runs.get(key, 0) - 1
            if left > 0:
                self._delta_runs[key] = left
            else:
                self._delta_runs.pop(key, None)
        subscriptions = self._by_run.get(key)
        if subscriptions is not None:
            subscriptions.discard(subscription)
            if not subscriptions:
                del self._by_run[key]
