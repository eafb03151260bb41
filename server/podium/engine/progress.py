"""Watching runs: replay from the event log, then live events, gap-free.

A watcher subscribes *before* reading the log, so every event committed after
the read reaches the run's feed; duplicates between the two are dropped by
sequence. A watcher that falls out of the feed (see hub.py) is cut off with a
resumable status naming the last sequence it was sent: it never slows the
engine, never holds events of its own in memory, and resumes exactly where it
stopped with WatchRun(after_sequence=that sequence).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection
from typing import Protocol

from podium.core.errors import ResourceExhausted, Unavailable
from podium.core.model import Event, OutputDelta
from podium.core.states import EventType, RunState
from podium.engine.hub import EventHub

REPLAY_PAGE = 1000


class RunLog(Protocol):
    """Where a watcher reads what memory no longer holds (the engine)."""

    async def run_status(self, run_id: str) -> tuple[RunState, int]:
        """A run's state and last sequence; NotFound for an unknown run."""
        ...

    async def read_events(self, run_id: str, after_sequence: int, limit: int) -> list[Event]: ...


class SharedReads:
    """A RunLog whose concurrent reads of the same page are one read: subscribers
    catching up from the same position (many lagging behind one busy run)
    share the query and the events it decoded, instead of each holding a copy."""

    def __init__(self, log: RunLog) -> None:
        self._log = log
        self._reading: dict[tuple[str, int, int], asyncio.Future[list[Event]]] = {}

    async def run_status(self, run_id: str) -> tuple[RunState, int]:
        return await self._log.run_status(run_id)

    async def read_events(self, run_id: str, after_sequence: int, limit: int) -> list[Event]:
        key = (run_id, after_sequence, limit)
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._log.read_events(run_id, after_sequence, limit))
            self._reading[key] = reading
            reading.add_done_callback(lambda done: self._finished(key, done))
        # shield: a subscriber leaving does not cancel the read the others wait for.
        return await asyncio.shield(reading)

    def _finished(self, key: tuple[str, int, int], done: asyncio.Future[list[Event]]) -> None:
        self._reading.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: every waiter may have left before it ended


class DeltaBatch(list[OutputDelta]):
    """Output deltas (live only) in a watcher's stream of event batches."""


async def watch_run(
    hub: EventHub, log: RunLog, run_id: str, after_sequence: int, *, deltas: bool = False
) -> AsyncIterator[list[Event] | DeltaBatch]:
    """Batches of consecutive events after `after_sequence`; ends after the
    run's final event. With `deltas`, live output deltas come between them,
    as DeltaBatch, each before the events committed after it was streamed.

    Raises SubscriberTooSlow once the subscriber fell out of the run's feed:
    it took so long to take its events that the feed no longer holds the next
    one. Everything before that was yielded; the caller resumes after
    `last_sequence` (a new WatchRun replays the rest from the log)."""
    subscription = hub.subscribe_run(run_id, deltas=deltas)
    feed = subscription.feed
    try:
        state, last_sequence = await log.run_status(run_id)
        last = max(0, after_sequence)
        # Catch up: from memory when it holds everything after `last`, else
        # from the log, until memory holds the rest.
        while True:
            events = feed.take(last, feed.head) if feed.covers(last) else None
            if events is None:
                events = hub.recent(run_id, last)
            if events is None:
                events = await log.read_events(run_id, last, REPLAY_PAGE)
            if not events:
                break
            last = events[-1].sequence
            yield events
            if _ends(events):
                return
        if state.is_final and last >= last_sequence:
            return
        # Live: whatever the feed releases from now on.
        while True:
            await subscription.wait()
            if subscription.closed:
                raise Unavailable("the server is shutting down; reconnect", reason="SHUTTING_DOWN")
            streamed = subscription.drain_deltas()
            if streamed:
                yield DeltaBatch(streamed)
            batch = feed.take(last)
            if batch is None:
                hub.cut_offs += 1
                raise SubscriberTooSlow(last, feed.capacity)
            if not batch:
                continue
            last = batch[-1].sequence
            yield batch
            if _ends(batch):
                return
    finally:
        subscription.close()


def _ends(events: list[Event]) -> bool:
    """Whether the batch holds the run's final event. It need not be the last
    one: a notification's events are recorded after it, and a subscriber that
    takes its events late takes them together (then waiting for more would
    keep its stream open forever). A run's events before its final one carry
    a state that is not final, so a batch of a running run costs one look."""
    if not events[-1].run_state.is_final:
        return False
    return any(event.is_final for event in reversed(events))


class SubscriberTooSlow(ResourceExhausted):
    """A WatchRun subscriber cut off for lagging; it resumes after `last_sequence`."""

    def __init__(self, last_sequence: int, bound: int) -> None:
        super().__init__(
            f"subscriber fell more than {bound} events behind the run; call WatchRun "
            f"again with after_sequence={last_sequence} to resume where it stopped",
            reason="SUBSCRIBER_TOO_SLOW",
            metadata={"last_sequence": str(last_sequence)},
        )
        self.last_sequence = last_sequence


async def watch_runs(
    hub: EventHub,
    tenant: str,
    workflow_ids: Collection[str] = (),
    run_states: Collection[RunState] = (),
    event_types: Collection[EventType] = (),
) -> AsyncIterator[list[Event]]:
    """Live events of every run of `tenant` that match the filters, until the client
    leaves. A subscriber that falls a whole buffer behind is cut off with
    RESOURCE_EXHAUSTED: there is no single log position to resume many runs
    from, so it should reconnect and re-read the runs it cares about."""
    matches = _matcher(tenant, set(workflow_ids), set(run_states), set(event_types))
    subscription = hub.subscribe_all(matches)
    try:
        while True:
            await subscription.wait()
            if subscription.closed:
                raise Unavailable("the server is shutting down; reconnect", reason="SHUTTING_DOWN")
            if subscription.lagging:
                raise ResourceExhausted(
                    "subscriber fell too far behind the live event stream; reconnect",
                    reason="SUBSCRIBER_TOO_SLOW",
                )
            batch = subscription.drain()
            if batch:
                yield batch
    finally:
        subscription.close()


def _matcher(
    tenant: str, workflow_ids: set[str], run_states: set[RunState], event_types: set[EventType]
) -> Callable[[Event], bool]:
    def matches(event: Event) -> bool:
        return (
            event.tenant == tenant
            and (not workflow_ids or event.workflow_id in workflow_ids)
            and (not run_states or event.run_state in run_states)
            and (not event_types or event.type in event_types)
        )

    return matches
