"""Runs' completion notifications: when a run ends, its summary is POSTed,
signed, to the URL its workflow (or StartRun) named.

The record is made due in the same batch as the run's final state, so a
server that stops before delivering finds it PENDING at the next start and
delivers it then. Each attempt is recorded, with the record's new state, in
one batch: a NOTIFICATION_DELIVERED or NOTIFICATION_FAILED event of the run
(after its final event), so a run's log tells whether its receiver was told.
Failed attempts are retried with exponential backoff up to MAX_ATTEMPTS; the
signing and sending are the reusable part (podium.egress.webhooks).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from podium.core.clock import Clock, sleep_until
from podium.core.model import Event, NotificationRecord, RunRecord
from podium.core.states import EventType
from podium.egress.webhooks import MAX_ATTEMPTS, Delivery, backoff
from podium.engine.ports import RunStore
from podium.engine.recorder import Recorder

log = logging.getLogger("podium.engine")

Deliver = Callable[[str, str, Any, float], Awaitable[Delivery]]


class Notifier:
    def __init__(self, store: RunStore, recorder: Recorder, clock: Clock, deliver: Deliver) -> None:
        self._store = store
        self._recorder = recorder
        self._clock = clock
        self._deliver = deliver
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="podium-notifier")

    def wake(self) -> None:
        """A run ended with a notification: look at the due ones now."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                next_due = await self._deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:  # the store failed: try again a little later
                log.exception("delivering completion notifications failed")
                next_due = self._clock.now() + 5.0
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait())]
            if next_due is not None:
                waits.append(asyncio.ensure_future(sleep_until(self._clock, next_due)))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()

    async def _deliver_due(self) -> float | None:
        """Attempts every due notification; the next due time of the others."""
        next_due: float | None = None
        for notification in await self._store.pending_notifications():
            due = notification.due_time or 0.0
            if due > self._clock.now():
                next_due = due if next_due is None else min(next_due, due)
                continue
            await self._attempt(notification)
            if notification.state == "PENDING" and notification.due_time is not None:
                due = notification.due_time
                next_due = due if next_due is None else min(next_due, due)
        return next_due

    async def _attempt(self, notification: NotificationRecord) -> None:
        view = await self._store.get_run(notification.run_id)
        if view is None:  # deleted meanwhile
            return
        run = view.run
        delivery = await self._deliver(
            notification.url, notification.secret, summary(run), self._clock.now()
        )
        notification.attempts += 1
        now = self._clock.now()
        due: float | None = None
        if delivery.delivered:
            notification.state, kind = "DELIVERED", EventType.NOTIFICATION_DELIVERED
        elif delivery.final or notification.attempts >= MAX_ATTEMPTS:
            notification.state, kind = "FAILED", EventType.NOTIFICATION_FAILED
        else:
            due = now + backoff(notification.attempts)
            kind = EventType.NOTIFICATION_FAILED
        notification.due_time = due
        run.last_sequence = max(run.last_sequence, await self._store.last_sequence(run.run_id))
        run.last_sequence += 1
        self._store.put_notification(notification)
        self._recorder.run(run)
        self._recorder.event(
            Event(
                run_id=run.run_id,
                sequence=run.last_sequence,
                time=now,
                type=kind,
                workflow_id=run.workflow_id,
                run_state=run.state,
                tenant=run.tenant,
                attempt=notification.attempts,
                message=f"{notification.url}: {delivery.detail}",
                due_time=due,
            )
        )
        await self._recorder.durable()


def summary(run: RunRecord) -> dict[str, Any]:
    """What the receiver gets: the run's outcome, never its steps' data."""
    body: dict[str, Any] = {
        "run": f"runs/{run.run_id}",
        "workflow": f"workflows/{run.workflow_id}",
        "workflow_version": run.workflow_version,
        "state": run.state.name,
        "labels": run.labels,
        "output": run.output,
        "cost": str(run.cost),
        "create_time": _iso(run.create_time),
        "end_time": _iso(run.end_time),
    }
    if run.failure is not None:
        body["failure"] = {"type": run.failure.type, "message": run.failure.message}
    return body


def _iso(instant: float | None) -> str | None:
    if instant is None:
        return None
    return datetime.fromtimestamp(instant, UTC).isoformat().replace("+00:00", "Z")
