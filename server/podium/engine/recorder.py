"""Persists run state and events, and publishes events once committed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from podium.core.model import AttemptRecord, Event, ItemRecord, RunRecord, StepRecord
from podium.engine.hub import EventHub
from podium.engine.ports import RunStore


class Recorder:
    def __init__(self, store: RunStore, hub: EventHub) -> None:
        self.store = store
        self.hub = hub
        self._batch_id = -1
        self._unpublished: list[Event] = []

    def run(self, run: RunRecord) -> None:
        self.store.put_run(run)

    def step(self, run_id: str, step: StepRecord) -> None:
        self.store.put_step(run_id, step)

    def attempt(self, run_id: str, step_id: str, attempt: AttemptRecord) -> None:
        self.store.put_attempt(run_id, step_id, attempt)

    def item(self, run_id: str, step_id: str, item: ItemRecord) -> None:
        self.store.put_item(run_id, step_id, item)

    def event(self, event: Event) -> None:
        self.store.put_event(event)
        if not event.run_state.is_final:
            self.hub.expect(event.run_id, event.sequence)
        store = self.store
        if store.batch_id != self._batch_id:
            # First event of a new batch: publish this batch's events, and only
            # them, once it has committed.
            self._batch_id = store.batch_id
            events: list[Event] = []
            self._unpublished = events
            store.after_commit(lambda: self.hub.publish(events))
        self._unpublished.append(event)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Runs `callback` once everything recorded so far is committed."""
        self.store.after_commit(callback)

    async def durable(self) -> None:
        """Waits until everything recorded so far is committed."""
        await self.store.commit()

    async def settled(self) -> None:
        """As `durable`, and until the after-commit callbacks registered so far
        have run too (they run in registration order): their events published,
        a finished run out of the engine's running set. The store may hold
        callbacks for a while after their commit (store/group_commit.py)."""
        ran: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def mark() -> None:
            if not ran.done():  # the caller may have given up (cancelled)
                ran.set_result(None)

        self.store.after_commit(mark)
        # A failed commit raises here: its callbacks, ours included, never run.
        await self.store.commit()
        await ran
