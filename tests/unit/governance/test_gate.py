"""The governance gate on its own: a real Governance and the simulated
provider, a recording observer, a ManualClock. What the gate decides and
what it reports, without an engine, a store or gRPC."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from podium.core.clock import ManualClock
from podium.core.failures import BUDGET_EXCEEDED, CIRCUIT_OPEN, AgentError
from podium.core.model import Usage
from podium.governance.budgets import BudgetWarning
from podium.governance.gate import DEFAULT_MAX_TOKENS, Caller, LlmGate, estimate_tokens
from podium.governance.policy import Policy
from podium.governance.prices import contribute_provider_prices
from podium.governance.service import Governance, Transition
from podium.plugins.api import CompletionRequest, Message, Provider, ProviderError, Target
from podium.plugins.builtin.simulated_provider import SimulatedProvider


@dataclass
class Recorded:
    """Implements GateObserver by keeping every report, in order."""

    reports: list[tuple[str, Any]] = field(default_factory=list)

    def waiting(self, reason: str) -> None:
        self.reports.append(("waiting", reason))

    def resumed(self, reason: str) -> None:
        self.reports.append(("resumed", reason))

    def llm_call(
        self,
        usage: Usage,
        cost: Decimal,
        provider: str,
        model: str,
        price_version: str,
        message: str = "",
    ) -> None:
        self.reports.append(("llm_call", (usage.calls, cost, provider, model, message)))

    def breaker_changed(self, transition: Transition) -> None:
        self.reports.append(("breaker", (transition.breaker, transition.state)))

    def budget_warning(self, warning: BudgetWarning) -> None:
        self.reports.append(("budget_warning", warning.budget_name))

    def calling(self, provider: str, model: str) -> None:
        self.reports.append(("calling", (provider, model)))

    def call_ended(self, finish_reason: str, error: BaseException | None) -> None:
        self.reports.append(("call_ended", (finish_reason, type(error).__name__ if error else "")))

    def kinds(self) -> list[str]:
        """The reports, without the bracket of each provider call (calling, call_ended)."""
        return [kind for kind, _ in self.reports if kind not in ("calling", "call_ended")]


def governance(clock: ManualClock, provider: Provider, **policy: Any) -> Governance:
    governed = Governance(Policy.model_validate(policy), clock)
    contribute_provider_prices(governed.prices, [provider])
    return governed


def request(text: str = "hello there", **options: Any) -> CompletionRequest:
    return CompletionRequest(
        model="sim-small", messages=[Message("user", text)], max_tokens=50, options=options
    )


def gate(governed: Governance, provider: Provider, observer: Recorded, **caller: Any) -> LlmGate:
    who = Caller(**{"run_id": "r1", "workflow": "wf", "agent": "llm", **caller})
    return LlmGate(
        governed, lambda name: provider if name == provider.name else None, who, observer
    )


async def test_a_call_is_charged_its_exact_cost_and_reported_once() -> None:
    clock, provider, observer = ManualClock(), SimulatedProvider(latency_ms=0), Recorded()
    governed = governance(clock, provider)
    result = await gate(governed, provider, observer).complete("simulated", request())
    price, _ = governed.prices.lookup("simulated", "sim-small")
    assert price is not None
    assert result.cost == price.cost(result.completion.usage) > 0
    charged = ("llm_call", (1, result.cost, "simulated", "sim-small", ""))
    finish = result.completion.finish_reason
    assert observer.reports == [
        ("calling", ("simulated", "sim-small")),
        charged,
        ("call_ended", (finish, "")),
    ]


async def test_a_refused_budget_consumes_nothing_and_is_not_retryable() -> None:
    clock, provider, observer = ManualClock(), SimulatedProvider(latency_ms=0), Recorded()
    governed = governance(
        clock, provider, budgets=[{"name": "tiny", "scope": "server", "limit": "0.0000001"}]
    )
    with pytest.raises(AgentError) as refused:
        await gate(governed, provider, observer).complete("simulated", request())
    assert refused.value.code == BUDGET_EXCEEDED and not refused.value.retryable
    assert observer.reports == []
    assert governed.ledger.spent("tiny") == 0 and governed.ledger.reserved("tiny") == 0


async def test_the_run_ceiling_refuses_the_call_that_could_pass_it() -> None:
    clock, provider, observer = ManualClock(), SimulatedProvider(latency_ms=0), Recorded()
    governed = governance(clock, provider)
    worst = governed.prices.worst_case("simulated", "sim-small", estimate_tokens(request()), 50)
    calls = gate(governed, provider, observer, max_cost=worst)
    first = await calls.complete("simulated", request())
    # Settled below its worst case; the next worst case no longer fits beside it.
    assert 0 < first.cost < worst
    with pytest.raises(AgentError) as refused:
        await calls.complete("simulated", request())
    assert refused.value.code == BUDGET_EXCEEDED
    assert observer.kinds() == ["llm_call"]


async def test_quota_waits_are_reported_and_resumed() -> None:
    clock, provider, observer = ManualClock(), SimulatedProvider(latency_ms=0), Recorded()
    quota = {"name": "one-a-minute", "scope": "provider:simulated", "dimension": "requests"}
    governed = governance(clock, provider, quotas=[{**quota, "limit": 1, "burst": 1}])
    calls = gate(governed, provider, observer)
    await calls.complete("simulated", request())
    second = asyncio.create_task(calls.complete("simulated", request()))
    while ("waiting", "quota:one-a-minute") not in observer.reports:
        await asyncio.sleep(0)
    assert not second.done()
    clock.advance(60)
    await second
    assert observer.kinds() == ["llm_call", "waiting", "resumed", "llm_call"]


async def test_an_open_breaker_hands_the_call_to_the_fallback() -> None:
    clock, provider, observer = ManualClock(), SimulatedProvider(latency_ms=0), Recorded()
    governed = governance(
        clock,
        provider,
        breakers={"overrides": {"model:simulated/sim-large": {"failure_threshold": 1}}},
    )
    calls = gate(governed, provider, observer)
    failing = CompletionRequest(
        model="sim-large",
        messages=[Message("user", "hi")],
        max_tokens=10,
        options={"fail_with": "server_error", "fail_models": ["sim-large"]},
    )
    fallbacks = [Target("simulated", "sim-small")]
    first = await calls.complete("simulated", failing, fallbacks=fallbacks)
    assert first.model == "sim-small"
    assert ("breaker", ("model:simulated/sim-large", "OPEN")) in observer.reports
    observer.reports.clear()
    second = await calls.complete("simulated", failing, fallbacks=fallbacks)
    # The open breaker is not even tried: only the fallback's call is reported.
    assert second.model == "sim-small"
    assert observer.kinds() == ["llm_call"]


async def test_fail_fast_refuses_at_once_when_every_breaker_is_open() -> None:
    clock, provider, observer = ManualClock(), SimulatedProvider(latency_ms=0), Recorded()
    governed = governance(
        clock, provider, breakers={"defaults": {"failure_threshold": 1, "cooldown": 30}}
    )
    calls = gate(governed, provider, observer, fail_fast=True)
    with pytest.raises(ProviderError):
        await calls.complete("simulated", request(fail_with="server_error"))
    with pytest.raises(AgentError) as refused:
        await calls.complete("simulated", request())
    assert refused.value.code == CIRCUIT_OPEN


async def test_a_call_without_max_tokens_is_bounded_by_the_default() -> None:
    clock, provider, observer = ManualClock(), SimulatedProvider(latency_ms=0), Recorded()
    seen: list[CompletionRequest] = []

    class Spy:
        name = provider.name
        description = provider.description
        models = provider.models

        def price(self, model: str) -> Any:
            return provider.price(model)

        async def complete(self, call: CompletionRequest) -> Any:
            seen.append(call)
            return await provider.complete(call)

    spy = Spy()
    governed = governance(clock, spy)
    unbounded = CompletionRequest(model="sim-small", messages=[Message("user", "hi")])
    await gate(governed, spy, observer).complete("simulated", unbounded)
    assert [call.max_tokens for call in seen] == [DEFAULT_MAX_TOKENS]


async def test_each_provider_call_is_bracketed_by_calling_and_call_ended() -> None:
    clock, provider, observer = ManualClock(), SimulatedProvider(latency_ms=0), Recorded()
    governed = governance(clock, provider)
    calls = gate(governed, provider, observer)
    failing = CompletionRequest(
        model="sim-large",
        messages=[Message("user", "hi")],
        max_tokens=10,
        options={"fail_with": "server_error", "fail_models": ["sim-large"]},
    )
    # The first target fails, the fallback answers: two brackets, one charge.
    result = await calls.complete(
        "simulated", failing, fallbacks=[Target("simulated", "sim-small")]
    )
    assert [kind for kind, _ in observer.reports if kind != "breaker"] == [
        "calling",
        "call_ended",
        "calling",
        "llm_call",
        "call_ended",
    ]
    brackets = [value for kind, value in observer.reports if kind in ("calling", "call_ended")]
    assert brackets == [
        ("simulated", "sim-large"),
        ("", "ProviderError"),
        ("simulated", "sim-small"),
        (result.completion.finish_reason, ""),
    ]
