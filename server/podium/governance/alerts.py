"""Governance alerts: a budget crossing a threshold, a breaker opening (and closing
again), a call waiting too long for a quota or a budget.

Raising an alert never blocks and never fails: it is counted (the observer turns it
into metrics), logged, and, when the policy names a URL, queued for delivery. One task
delivers the queue with the signed webhooks of completion notifications
(podium.egress.webhooks: same signature, same backoff, same attempt limit); a failing
or dead endpoint only delays and drops alerts, never a call. The queue is bounded: the
oldest alert is dropped (and counted) when it is full. Alerts of one kind and subject
closer than `min_interval` are dropped as duplicates.

Alerts live in memory: those still queued when the server stops are lost (they are
metrics and log lines too), unlike completion notifications, which are durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from podium.core.clock import Clock
from podium.egress.webhooks import MAX_ATTEMPTS, Delivery, backoff
from podium.governance.policy import AlertKind, AlertsPolicy, PolicyError

__all__ = ["Alert", "AlertObserver", "Alerter", "Deliver", "WaitWatch", "check_secret"]

log = logging.getLogger("podium.governance.alerts")

# (url, secret name, JSON payload, wall-clock now): podium.egress.webhooks.deliver, bound
# to the server's outbound client by the composition root.
Deliver = Callable[[str, str, Any, float], Awaitable[Delivery]]


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    kind: AlertKind
    # What the alert is about: "budget:<name>", "breaker:<name>", "quota:<name>".
    subject: str
    message: str
    time: float
    details: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """What the receiver gets (its `id` stays the same across retries)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "subject": self.subject,
            "message": self.message,
            "time": _iso(self.time),
            "details": self.details,
        }


class AlertObserver(Protocol):
    """What becomes of alerts (telemetry counts them)."""

    def raised(self, kind: str, subject: str) -> None: ...

    def delivered(self, kind: str, subject: str) -> None: ...

    def failed(self, kind: str, subject: str, final: bool) -> None:
        """An attempt failed; `final`: the alert is given up."""
        ...

    def dropped(self, kind: str, subject: str) -> None:
        """The queue was full: the alert is dropped undelivered."""
        ...


@dataclass(eq=False)
class _Pending:
    alert: Alert
    attempts: int = 0
    due: float = 0.0  # monotonic


class WaitWatch:
    """A call's wait being watched: alerts once it lasts `wait_after`, unless ended."""

    __slots__ = ("_task",)

    def __init__(self, task: asyncio.Task[None] | None) -> None:
        self._task = task

    def end(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None


class Alerter:
    def __init__(self, clock: Clock, policy: AlertsPolicy | None = None) -> None:
        self._clock = clock
        self.policy = policy
        self._deliver: Deliver | None = None
        self.observer: AlertObserver | None = None
        self._queue: list[_Pending] = []
        self._last: dict[tuple[str, ...], float] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- configuration ------------------------------------------------------------

    def configure(self, policy: AlertsPolicy | None) -> None:
        """Takes a new alerts section; queued alerts go to the new URL."""
        self.policy = policy
        self._wake.set()

    def enabled(self, kind: AlertKind) -> bool:
        return self.policy is not None and kind in self.policy.kinds

    def budget_thresholds(self, warn_fraction: float) -> list[float]:
        """The fractions of a budget's limit whose crossing alerts."""
        if self.policy is None:
            return []
        if self.policy.budget_thresholds is not None:
            return sorted(self.policy.budget_thresholds)
        return sorted({warn_fraction, 1.0})

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- raising ------------------------------------------------------------------

    def raise_alert(
        self,
        kind: AlertKind,
        subject: str,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        dedupe: str = "",
    ) -> Alert | None:
        """Counts, logs and queues an alert, at once; None when its kind is off or
        one of the same kind, subject (and `dedupe`) went out within min_interval."""
        policy = self.policy
        if policy is None or kind not in policy.kinds:
            return None
        now = self._clock.monotonic()
        key = (kind, subject, dedupe)
        last = self._last.get(key)
        if last is not None and now - last < policy.min_interval:
            log.debug(
                "alert %s %s dropped: a duplicate within %gs", kind, subject, policy.min_interval
            )
            return None
        self._last[key] = now
        alert = Alert(uuid.uuid4().hex, kind, subject, message, self._clock.now(), details or {})
        log.warning("alert %s %s: %s", kind, subject, message)
        self._notify("raised", kind, subject)
        if policy.url and self._deliver is not None:
            while len(self._queue) >= policy.queue_size:
                dropped = self._queue.pop(0)
                log.warning(
                    "alert %s %s dropped undelivered: %d alerts queued",
                    dropped.alert.kind,
                    dropped.alert.subject,
                    len(self._queue) + 1,
                )
                self._notify("dropped", dropped.alert.kind, dropped.alert.subject)
            self._queue.append(_Pending(alert, due=now))
            self._wake.set()
        return alert

    def watch_wait(self, kind: AlertKind, subject: str, details: dict[str, Any]) -> WaitWatch:
        """A call begins to wait for `subject`; alerts if it still waits after
        `wait_after` seconds. End the watch when the wait ends."""
        policy = self.policy
        if policy is None or kind not in policy.kinds:
            return WaitWatch(None)
        after = policy.wait_after
        # Due from now, not from when the task first runs (the clock may move meanwhile).
        due = self._clock.monotonic() + after

        async def watch() -> None:
            await self._clock.sleep(due - self._clock.monotonic())
            self.raise_alert(
                kind,
                subject,
                f"a call of run {details.get('run', '')} has waited {after:g}s for {subject}",
                {**details, "waited_seconds": after},
            )

        return WaitWatch(asyncio.ensure_future(watch()))

    # -- delivering ---------------------------------------------------------------

    def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._task = asyncio.create_task(self._loop(), name="podium-alerts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._queue:
            log.warning("%d alerts undelivered at shutdown", len(self._queue))

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not end alerting
                log.exception("delivering alerts failed")
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait())]
            if self._queue:
                due = min(p.due for p in self._queue)
                waits.append(asyncio.ensure_future(self._sleep_until(due)))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()

    async def _sleep_until(self, due: float) -> None:
        # The delay is read when the sleep begins, not when it is scheduled:
        # the clock may move in between (a due time must not slip by that much).
        await self._clock.sleep(max(due - self._clock.monotonic(), 0.0))

    async def _deliver_due(self) -> None:
        """Attempts each due alert once, oldest first."""
        for pending in [p for p in self._queue if p.due <= self._clock.monotonic()]:
            policy, deliver = self.policy, self._deliver
            if pending not in self._queue:
                continue  # dropped meanwhile
            if policy is None or not policy.url or deliver is None:
                self._queue.remove(pending)  # alerts were switched off
                continue
            delivery = await deliver(
                policy.url, policy.secret, pending.alert.payload(), self._clock.now()
            )
            if pending not in self._queue:
                continue
            pending.attempts += 1
            alert = pending.alert
            if delivery.delivered:
                self._queue.remove(pending)
                self._notify("delivered", alert.kind, alert.subject)
                continue
            final = delivery.final or pending.attempts >= MAX_ATTEMPTS
            self._notify("failed", alert.kind, alert.subject, final)
            if final:
                self._queue.remove(pending)
                log.warning(
                    "alert %s %s not delivered after %d attempts: %s",
                    alert.kind,
                    alert.subject,
                    pending.attempts,
                    delivery.detail,
                )
            else:
                pending.due = self._clock.monotonic() + backoff(pending.attempts)
                log.info(
                    "alert %s %s: attempt %d failed (%s), again in %gs",
                    alert.kind,
                    alert.subject,
                    pending.attempts,
                    delivery.detail,
                    backoff(pending.attempts),
                )

    def _notify(self, what: str, kind: str, subject: str, final: bool = False) -> None:
        observer = self.observer
        if observer is None:
            return
        # A metrics bug must not reach the gate that raised the alert.
        with contextlib.suppress(Exception):
            if what == "raised":
                observer.raised(kind, subject)
            elif what == "delivered":
                observer.delivered(kind, subject)
            elif what == "failed":
                observer.failed(kind, subject, final)
            else:
                observer.dropped(kind, subject)


def check_secret(policy: AlertsPolicy | None, secrets: Iterable[str]) -> None:
    """PolicyError unless the secret that signs alerts is one the server holds: a
    typo stops the server at start, not every alert later."""
    if policy is None or not policy.url:
        return
    names = sorted(secrets)
    if policy.secret not in names:
        held = ", ".join(names) if names else "none"
        raise PolicyError(
            "alerts.secret",
            f"secret {policy.secret!r} is not configured on the server (podium serve "
            f"--secret {policy.secret}=env:VAR; configured: {held})",
        )


def _iso(instant: float) -> str:
    return datetime.datetime.fromtimestamp(instant, datetime.UTC).isoformat().replace("+00:00", "Z")
