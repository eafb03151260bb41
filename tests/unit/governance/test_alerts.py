"""The alerter on its own, delivering with the real signed webhooks to a local endpoint
on a ManualClock: duplicates within min_interval are dropped, a failing endpoint is
tried MAX_ATTEMPTS times with backoff then given up, a refused destination is given up
at once, a wait alerts only if it lasts, and the configuration can change under it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from podium.core.clock import ManualClock
from podium.egress import webhooks
from podium.egress.client import EgressClient
from podium.egress.destinations import DestinationPolicy, parse_networks
from podium.egress.secrets import Secrets
from podium.governance.alerts import Alerter
from podium.governance.budgets import Budget
from podium.governance.gate import Caller, LlmGate, NullObserver
from podium.governance.policy import AlertsPolicy, Policy
from podium.governance.prices import contribute_provider_prices
from podium.governance.scopes import CallScopes
from podium.governance.service import Governance
from podium.plugins.api import CompletionRequest, Message
from podium.plugins.builtin.simulated_provider import SimulatedProvider
from podium.testing import eventually
from podium.testing.http_endpoint import Reply, http_endpoint

CALL = CallScopes(provider="simulated", model="sim-small", agent="llm", workflow="wf")


@dataclass
class Counts:
    """An AlertObserver keeping what it was told, in order."""

    seen: list[tuple[Any, ...]] = field(default_factory=list)

    def raised(self, kind: str, subject: str) -> None:
        self.seen.append(("raised", kind, subject))

    def delivered(self, kind: str, subject: str) -> None:
        self.seen.append(("delivered", kind, subject))

    def failed(self, kind: str, subject: str, final: bool) -> None:
        self.seen.append(("failed", kind, subject, final))

    def dropped(self, kind: str, subject: str) -> None:
        self.seen.append(("dropped", kind, subject))

    def of(self, what: str) -> list[tuple[Any, ...]]:
        return [entry for entry in self.seen if entry[0] == what]


@asynccontextmanager
async def alerter(
    clock: ManualClock, allow_loopback: bool = True, **section: Any
) -> AsyncIterator[tuple[Alerter, Counts]]:
    client = EgressClient(
        DestinationPolicy(parse_networks(["127.0.0.1"] if allow_loopback else [])),
        Secrets({"alerts": "k3y"}),
    )
    alerts = Alerter(clock, AlertsPolicy.model_validate({"secret": "alerts", **section}))
    counts = Counts()
    alerts.observer = counts

    def deliver(url: str, secret: str, payload: Any, now: float) -> Any:
        return webhooks.deliver(client, url, secret, payload, now)

    alerts.start(deliver)
    try:
        yield alerts, counts
    finally:
        await alerts.stop()
        await client.close()


async def test_duplicates_within_min_interval_are_dropped() -> None:
    clock = ManualClock()
    with http_endpoint() as endpoint:
        async with alerter(clock, url=endpoint.url(), min_interval=60) as (alerts, counts):
            assert alerts.raise_alert("breaker_opened", "breaker:provider:p", "opened")
            assert alerts.raise_alert("breaker_opened", "breaker:provider:p", "again") is None
            # Another subject, or another kind, is no duplicate.
            assert alerts.raise_alert("breaker_opened", "breaker:provider:q", "opened")
            assert alerts.raise_alert("breaker_closed", "breaker:provider:p", "closed")
            clock.advance(60)
            assert alerts.raise_alert("breaker_opened", "breaker:provider:p", "a minute on")
            await eventually(lambda: len(counts.of("delivered")) == 4, what="4 deliveries")
    assert [request.json()["message"] for request in endpoint.requests] == [
        "opened",
        "opened",
        "closed",
        "a minute on",
    ]
    assert len(counts.of("raised")) == 4


async def test_a_failing_endpoint_is_given_up_after_max_attempts() -> None:
    clock = ManualClock()
    with http_endpoint() as endpoint:
        endpoint.script(*[Reply(503, b"busy")] * webhooks.MAX_ATTEMPTS)
        async with alerter(clock, url=endpoint.url()) as (alerts, counts):
            alerts.raise_alert("quota_wait", "quota:rpm", "waited")
            for attempt in range(1, webhooks.MAX_ATTEMPTS):
                await eventually(lambda: len(counts.of("failed")) == attempt)  # noqa: B023
                assert len(endpoint.requests) == attempt  # not again before its backoff
                clock.advance(webhooks.backoff(attempt))
            await eventually(lambda: len(counts.of("failed")) == webhooks.MAX_ATTEMPTS)
            assert alerts.queued == 0
    finals = [entry[3] for entry in counts.of("failed")]
    assert finals == [False] * (webhooks.MAX_ATTEMPTS - 1) + [True]
    assert counts.of("delivered") == []
    assert len({request.json()["id"] for request in endpoint.requests}) == 1


async def test_a_refused_destination_is_given_up_at_once() -> None:
    clock = ManualClock()
    with http_endpoint() as endpoint:
        async with alerter(clock, allow_loopback=False, url=endpoint.url()) as (alerts, counts):
            alerts.raise_alert("budget_threshold", "budget:cap", "past 80%")
            await eventually(lambda: counts.of("failed") != [], what="the refusal")
            assert alerts.queued == 0
    assert counts.of("failed") == [("failed", "budget_threshold", "budget:cap", True)]
    assert endpoint.requests == []


async def test_a_wait_alerts_only_if_it_lasts_wait_after() -> None:
    clock = ManualClock()
    with http_endpoint() as endpoint:
        async with alerter(clock, url=endpoint.url(), wait_after=30) as (alerts, counts):
            short = alerts.watch_wait("quota_wait", "quota:rpm", {"run": "runs/a"})
            long = alerts.watch_wait("budget_wait", "budget:cap", {"run": "runs/b"})
            clock.advance(29)
            await asyncio.sleep(0.05)
            short.end()
            clock.advance(1)
            await eventually(lambda: len(counts.of("delivered")) == 1, what="one delivery")
            long.end()
    assert counts.of("raised") == [("raised", "budget_wait", "budget:cap")]
    (request,) = endpoint.requests
    assert request.json()["details"] == {"run": "runs/b", "waited_seconds": 30}


async def test_kinds_left_out_and_a_missing_url_send_nothing() -> None:
    clock = ManualClock()
    with http_endpoint() as endpoint:
        async with alerter(clock, url=endpoint.url(), kinds=["breaker_opened"]) as (
            alerts,
            counts,
        ):
            assert alerts.raise_alert("budget_threshold", "budget:cap", "past 80%") is None
            # Without a url, alerts are counted (metrics) but not sent.
            alerts.configure(AlertsPolicy())
            assert alerts.raise_alert("budget_threshold", "budget:cap", "past 80%")
            assert alerts.queued == 0
            alerts.configure(None)
            assert alerts.raise_alert("breaker_opened", "breaker:provider:p", "opened") is None
    assert counts.seen == [("raised", "budget_threshold", "budget:cap")]
    assert endpoint.requests == []


async def test_queued_alerts_follow_a_new_url() -> None:
    clock = ManualClock()
    with http_endpoint() as old, http_endpoint() as new:
        old.script(Reply(500, b"down"))
        async with alerter(clock, url=old.url()) as (alerts, counts):
            alerts.raise_alert("breaker_opened", "breaker:provider:p", "opened")
            await eventually(lambda: counts.of("failed") != [], what="the failure")
            alerts.configure(AlertsPolicy(url=new.url(), secret="alerts"))
            clock.advance(webhooks.backoff(1))
            await eventually(lambda: counts.of("delivered") != [], what="the delivery")
    assert len(old.requests) == 1 and len(new.requests) == 1
    assert old.requests[0].json() == new.requests[0].json()


async def test_the_gate_alerts_a_budget_wait_that_lasts_and_not_one_that_ends_sooner() -> None:
    clock, provider = ManualClock(), SimulatedProvider(latency_ms=0)
    rules = {"alerts": {"kinds": ["budget_wait"], "wait_after": 5, "min_interval": 0}}
    governed = Governance(Policy.model_validate(rules), clock)
    contribute_provider_prices(governed.prices, [provider])
    counts = Counts()
    governed.alerts.observer = counts
    worst = governed.prices.worst_case("simulated", "sim-small", 2, 50)
    governed.ledger.update([Budget("cap", "server", "", worst * Decimal("1.5"))])
    request = CompletionRequest(
        model="sim-small", messages=[Message("user", "hello")], max_tokens=50
    )
    gate = LlmGate(
        governed,
        lambda _: provider,
        Caller(run_id="r1", workflow="wf", agent="llm", step_id="ask"),
        NullObserver(),
    )

    async def wait_for(seconds: float) -> None:
        # Another call in flight holds the room for `seconds`; ours waits meanwhile.
        in_flight = governed.ledger.reserve(CALL, "r0", None, worst)
        call = asyncio.create_task(gate.complete("simulated", request))
        await eventually(lambda: governed.ledger.waiting("cap") == 1, what="the call waiting")
        clock.advance(seconds)
        await asyncio.sleep(0.05)
        governed.ledger.release(in_flight)
        await call

    await wait_for(4)
    assert counts.seen == []
    await wait_for(5)
    assert counts.seen == [("raised", "budget_wait", "budget:cap")]
