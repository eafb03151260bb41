"""Watching runs: replay from the event log, then live events, gap-free.

A watcher subscribes *before* reading the log, so every event committed after
the read reaches its buffer; duplicates between the two are dropped by
sequence. A watcher too slow for its bounded buffer is marked lagging and
catches up from the log again: it never slows the engine and never holds more
than its buffer in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection
from typing import Protocol

from podium.core.errors import NotFound, ResourceExhausted, Unavailable
from podium.core.model import Event, OutputDelta
from podium.core.states import EventType, RunState
from podium.engine.hub import EventHub

REPLAY_PAGE = 1000
# A run watched by many: each subscriber is sent to at most once per
# PACE_PER_SUBSCRIBER times the run's other subscribers (at most MAX_PACE).
# A message costs the event loop about 0.1 ms whatever it holds, so 100
# subscribers each sent a message per commit of a chain would cost the run
# several times its own work; paced, each message carries many commits' events
# and the sends stay a fraction of the loop. A lone subscriber is not paced,
# and the final event ends any pause.
PACE_PER_SUBSCRIBER = 0.0005
MAX_PACE = 0.1


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
    as DeltaBatch, each before the events committed after it was streamed."""
    subscription = hub.subscribe_run(run_id, deltas=deltas)
    try:
        state, last_sequence = await log.run_status(run_id)
        last = max(0, after_sequence)
        while True:
            # Catch up (first time, and whenever we lagged): from memory when
            # it still holds everything after `last`, else from the log.
            while True:
                events = hub.recent(run_id, last)
                if events is None:
                    events = await log.read_events(run_id, last, REPLAY_PAGE)
                if not events:
                    break
                last = events[-1].sequence
                yield events
                if events[-1].is_final:
                    return
            if state.is_final and last >= last_sequence:
                return
            subscription.reset_lag()
            # Live: everything committed from now on lands in the buffer.
            loop = asyncio.get_running_loop()
            sent = loop.time()
            while not subscription.lagging:
                # Publishing already waited for the engine work its commit
                # released (store writer: callbacks are held until the next
                # batch is on its way to disk), so this serves at once.
                await subscription.wait()
                others = hub.subscribers_of(run_id) - 1
                if others > 0:
                    pace = min(MAX_PACE, others * PACE_PER_SUBSCRIBER)
                    await subscription.pause(sent + pace - loop.time())
                if subscription.closed:
                    raise Unavailable(
                        "the server is shutting down; reconnect", reason="SHUTTING_DOWN"
                    )
                if subscription.lagging:
                    break
                streamed = subscription.drain_deltas()
                if streamed:
                    yield DeltaBatch(streamed)
                batch = _after(subscription.drain(), last)
                if not batch:
                    continue
                if batch[0].sequence != last + 1:
                    break  # defensive: never skip; read the gap from the log
                last = batch[-1].sequence
                sent = loop.time()
                yield batch
                if batch[-1].is_final:
                    return
            subscription.drain()
            state, last_sequence = await log.run_status(run_id)
    except NotFound:
        raise
    finally:
        subscription.close()


def _after(events: list[Event], sequence: int) -> list[Event]:
    """The events after `sequence`, without a look at each event when they are
    consecutive (as a run's committed events are)."""
    if not events or events[0].sequence > sequence:
        return events
    if events[-1].sequence - events[0].sequence != len(events) - 1:
        return [event for event in events if event.sequence > sequence]
    return events[sequence - events[0].sequence + 1 :]


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
