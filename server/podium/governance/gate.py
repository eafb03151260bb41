"""The governance gate: every LLM call passes it.

In order: the circuit breakers of the target (provider, model, agent), then
quota admission (all or nothing; the caller hears `waiting("quota:<name>")`
meanwhile), then a reservation of the call's worst-case cost in every budget
it falls in and in its run's own ceiling (waiting, `budget:<name>`, while
other calls' reservations leave no room; refused only when it can never fit),
then the provider call; the
reservation is settled to the exact cost, or released, exactly once whatever
happens. With fallbacks, the next target takes the call while a target's
breakers are open or its provider is unavailable.

The gate decides; it reports what happened to an observer (the engine turns
that into run events), so data flows one way: engine -> gate -> provider.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Protocol

from podium.core.failures import BUDGET_EXCEEDED, CIRCUIT_OPEN, QUOTA_EXCEEDED
from podium.core.model import DEFAULT_TENANT, Usage
from podium.governance.alerts import WaitWatch
from podium.governance.breakers import BreakerState, CircuitBreaker, Outcome, classify
from podium.governance.budgets import (
    BudgetBusy,
    BudgetExceeded,
    BudgetWarning,
    Reservation,
)
from podium.governance.quotas import QuotaTimeout
from podium.governance.scopes import CallScopes
from podium.governance.service import Governance, Transition
from podium.plugins.api import (
    AgentError,
    CompletionRequest,
    LlmResult,
    Provider,
    ProviderError,
    Target,
)

__all__ = ["DEFAULT_MAX_TOKENS", "Caller", "GateObserver", "LlmGate", "NullObserver"]

# Cluster mode: how soon a call asks again while another server's probe is out.
PROBE_RETRY = 0.1
# What the gate reserves for output when a call sets no max_tokens (and then
# sends to the provider, so that the reservation is a true bound).
DEFAULT_MAX_TOKENS = 1024
# About four characters per token for English text; the reservation is
# corrected to the provider's exact usage when the call settles.
CHARACTERS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes the calls: what budgets, quotas and breakers key on."""

    run_id: str
    workflow: str
    agent: str
    # The run's own spending ceiling, if any.
    max_cost: Decimal | None = None
    # With every target's breaker open: fail at once instead of waiting.
    fail_fast: bool = False
    # The attempt making the calls: a reservation left open by a crash is
    # charged to it at the next start.
    step_id: str = ""
    attempt: int = 0
    item: int = -1
    # The run's tenant: its `tenant:<t>` quotas and budgets apply, its spend and
    # its breakers are its own.
    tenant: str = DEFAULT_TENANT
    # The run's priority: its calls' place among quota and budget waiters.
    priority: int = 0


class GateObserver(Protocol):
    """What the gate reports while it works; the engine records each as a run event."""

    def waiting(self, reason: str) -> None:
        """The call waits: "quota:<name>" or "breaker:<name>"."""
        ...

    def resumed(self, reason: str) -> None:
        """The call stopped waiting for `reason`."""
        ...

    def llm_call(
        self,
        usage: Usage,
        cost: Decimal,
        provider: str,
        model: str,
        price_version: str,
        message: str = "",
    ) -> None:
        """A call was made and charged (settled or, failing closed, reserved)."""
        ...

    def breaker_changed(self, transition: Transition) -> None: ...

    def budget_warning(self, warning: BudgetWarning) -> None: ...

    def calling(self, provider: str, model: str) -> None:
        """The call goes out to the provider (admitted, reserved)."""
        ...

    def call_ended(self, finish_reason: str, error: BaseException | None) -> None:
        """The provider answered (`finish_reason`), or the call failed with `error`."""
        ...


class NullObserver:
    """An observer that records nothing (benchmarks, tools outside a run)."""

    def waiting(self, reason: str) -> None:
        pass

    def resumed(self, reason: str) -> None:
        pass

    def llm_call(
        self,
        usage: Usage,
        cost: Decimal,
        provider: str,
        model: str,
        price_version: str,
        message: str = "",
    ) -> None:
        pass

    def breaker_changed(self, transition: Transition) -> None:
        pass

    def budget_warning(self, warning: BudgetWarning) -> None:
        pass

    def calling(self, provider: str, model: str) -> None:
        pass

    def call_ended(self, finish_reason: str, error: BaseException | None) -> None:
        pass


class LlmGate:
    """Implements podium.plugins.api.LlmGateway for one caller."""

    __slots__ = ("_caller", "_governance", "_observer", "_providers")

    def __init__(
        self,
        governance: Governance,
        providers: Callable[[str], Provider | None],
        caller: Caller,
        observer: GateObserver,
    ) -> None:
        self._governance = governance
        self._providers = providers
        self._caller = caller
        self._observer = observer

    async def complete(
        self,
        provider: str,
        request: CompletionRequest,
        *,
        fallbacks: Sequence[Target] = (),
    ) -> LlmResult:
        if request.max_tokens is None:
            request = replace(request, max_tokens=DEFAULT_MAX_TOKENS)
        targets = [Target(provider, request.model), *fallbacks]
        start, routed = self._route(targets)
        targets = targets[start:]
        while True:
            earliest: float | None = None
            blocked = ""
            for index, target in enumerate(targets):
                last = index == len(targets) - 1
                breakers = self._breakers(target)
                refusing = self._refusing(breakers)
                default_wait = 0.0
                if not refusing and self._governance.shared:
                    refusing = await self._probed_elsewhere(breakers)
                    default_wait = PROBE_RETRY
                if refusing:
                    retry = [b.retry_in() for b in refusing]
                    wait = max((r for r in retry if r is not None), default=default_wait)
                    earliest = wait if earliest is None else min(earliest, wait)
                    blocked = blocked or refusing[0].name
                    continue
                try:
                    return await self._call(
                        target,
                        replace(request, model=target.model),
                        breakers,
                        routed if index == 0 else "",
                    )
                except ProviderError as error:
                    if last or classify(error) != "failure":
                        raise
                    # Unavailable: the next target gets the call.
            # Every target's breaker is open.
            if self._caller.fail_fast:
                raise AgentError(
                    f"circuit breaker {blocked} does not admit calls", code=CIRCUIT_OPEN
                )
            self._observer.waiting(f"breaker:{blocked}")
            await self._governance.clock.sleep(max(earliest or 0.0, 0.01))
            self._observer.resumed(f"breaker:{blocked}")

    def _who(self) -> dict[str, Any]:
        """Who waits, for an alert's details."""
        caller = self._caller
        return {
            "run": f"runs/{caller.run_id}",
            "workflow": caller.workflow,
            "step": caller.step_id,
            "agent": caller.agent,
            "tenant": caller.tenant,
        }

    # -- budget-aware routing ----------------------------------------------------------

    def _route(self, targets: Sequence[Target]) -> tuple[int, str]:
        """The first target to try, and why when it is not the first: the last target whose
        `when_budget_above` threshold its budget has reached (the cheapest that applies)."""
        ledger = self._governance.ledger
        for index in range(len(targets) - 1, 0, -1):
            threshold = targets[index].when_budget_above
            if threshold is None:
                continue
            used = ledger.used_fraction(threshold.budget, self._caller.run_id)
            if used is not None and used >= threshold.fraction:
                return index, (
                    f"routed to {targets[index].provider}/{targets[index].model}: budget "
                    f"{threshold.budget} is {used:.0%} used (at or above {threshold.fraction:.0%})"
                )
        return 0, ""

    # -- breakers --------------------------------------------------------------------

    def _breakers(self, target: Target) -> list[CircuitBreaker]:
        board = self._governance.breakers
        # The run's tenant's own breakers: another tenant's faults never close its way.
        tenant = self._caller.tenant
        return [
            board.breaker(f"provider:{target.provider}", tenant),
            board.breaker(f"model:{target.provider}/{target.model}", tenant),
            board.breaker(f"agent:{self._caller.agent}", tenant),
        ]

    def _refusing(self, breakers: list[CircuitBreaker]) -> list[CircuitBreaker]:
        """The breakers refusing a call to this target, or none; a half-open
        breaker's probe slot is taken only when every breaker lets the call
        through (else it is handed back at once)."""
        with self._governance.transitions() as seen:
            refusing = [b for b in breakers if b.state is BreakerState.OPEN]
            if not refusing:
                taken: list[CircuitBreaker] = []
                for breaker in breakers:
                    (taken if breaker.allow() else refusing).append(breaker)
                if refusing:
                    for breaker in taken:
                        breaker.record_ignored()
        self._announce(seen)
        return refusing

    async def _probed_elsewhere(self, breakers: list[CircuitBreaker]) -> list[CircuitBreaker]:
        """Cluster mode: the half-open breakers whose probe another server holds
        (this server's probe slots are handed back); none when this one may probe."""
        probes = [b for b in breakers if b.probing]
        if not probes or await self._governance.claim_probes(probes):
            return []
        for breaker in probes:
            breaker.record_ignored()
        return probes

    def _record(self, breakers: list[CircuitBreaker], outcome: Outcome, cause: str) -> None:
        with self._governance.transitions() as seen:
            for breaker in breakers:
                breaker.record(outcome, cause)
        self._announce(seen)

    def _announce(self, transitions: list[Transition]) -> None:
        for transition in transitions:
            self._observer.breaker_changed(transition)

    # -- one call to one target ------------------------------------------------------

    async def _call(
        self,
        target: Target,
        request: CompletionRequest,
        breakers: list[CircuitBreaker],
        routed: str = "",
    ) -> LlmResult:
        governance = self._governance
        observer = self._observer
        caller = self._caller
        implementation = self._providers(target.provider)
        if implementation is None:
            raise ProviderError(f"unknown provider {target.provider!r}", kind="bad_request")
        call = CallScopes(
            provider=target.provider,
            model=target.model,
            agent=caller.agent,
            workflow=caller.workflow,
            tenant=caller.tenant,
        )
        max_tokens = request.max_tokens or DEFAULT_MAX_TOKENS
        input_estimate = estimate_tokens(request)
        demand = governance.quotas.plan(call, input_estimate, max_tokens)
        waited: list[str] = []
        watches: list[WaitWatch] = []

        def on_wait(reason: str) -> None:
            waited.append(reason)
            observer.waiting(reason)
            # A wait that lasts alerts (quota_wait), unless it ends first.
            watches.append(governance.alerts.watch_wait("quota_wait", reason, self._who()))

        try:
            try:
                admission = await governance.quotas.admit(
                    demand, None, on_wait=on_wait, priority=caller.priority
                )
            except QuotaTimeout as error:
                figures = f": {error.detail}" if error.detail else ""
                raise AgentError(
                    f"quota {error.reason} cannot admit this call{figures}",
                    code=QUOTA_EXCEEDED,
                    retryable=not error.detail,
                ) from None
            shared = None
            settled = False
            try:
                # Cluster mode: the quotas of every server together (the database's).
                shared = await governance.admit_shared(demand, on_wait)
            except BaseException as error:
                governance.quotas.settle(admission, 0, 0)
                governance.quotas.release(admission)
                if isinstance(error, QuotaTimeout):
                    raise AgentError(
                        f"quota {error.reason} cannot admit this call", code=QUOTA_EXCEEDED
                    ) from None
                raise
        finally:
            for watch in watches:
                watch.end()
        if waited:
            observer.resumed(waited[0])
        try:
            worst = governance.prices.worst_case(
                target.provider, target.model, input_estimate, max_tokens
            )
            try:
                reservation = await self._reserve(call, worst)
            except BudgetExceeded as error:
                governance.quotas.settle(admission, 0, 0)
                settled = True
                raise AgentError(str(error), code=BUDGET_EXCEEDED, retryable=False) from None
            try:
                # Durable before the call goes out: a crash during the call
                # leaves the row, and the next start charges it.
                await governance.hold(
                    reservation,
                    call,
                    step_id=caller.step_id,
                    attempt=caller.attempt,
                    item=caller.item,
                )
            except BaseException as error:
                governance.release(reservation)
                if isinstance(error, BudgetExceeded):  # shared budgets (cluster mode)
                    raise AgentError(str(error), code=BUDGET_EXCEEDED, retryable=False) from None
                raise
            observer.calling(target.provider, target.model)
            try:
                completion = await implementation.complete(request)
            except BaseException as error:
                if isinstance(error, ProviderError) and error.charge_reservation:
                    # The provider may have billed a call whose usage never
                    # arrived: charge its worst case (fail closed), and say so.
                    governance.ledger.settle(reservation, worst)
                    governance.record_spend(call, worst, reservation_id=reservation.id)
                    observer.llm_call(
                        Usage(calls=1),
                        worst,
                        target.provider,
                        target.model,
                        governance.prices.lookup(target.provider, target.model)[1],
                        message=f"no usage reported ({error}); charged the reservation",
                    )
                else:
                    governance.release(reservation)
                outcome = classify(error)
                if not isinstance(error, asyncio.CancelledError):
                    self._record(breakers, outcome, _cause(error))
                if isinstance(error, ProviderError) and error.kind == "rate_limited":
                    governance.quotas.feedback_rate_limited(call, error.retry_after or 1.0)
                observer.call_ended("", error)
                raise
            self._record(breakers, "success", "")
            if completion.remaining_requests is not None or completion.remaining_tokens is not None:
                governance.quotas.feedback_headers(
                    call,
                    remaining_requests=completion.remaining_requests,
                    remaining_tokens=completion.remaining_tokens,
                )
            price, version = governance.prices.lookup(target.provider, target.model)
            cost = price.cost(completion.usage) if price is not None else worst * 0
            warnings = governance.ledger.settle(reservation, cost)
            usage = completion.usage.copy()
            usage.calls = max(usage.calls, 1)
            governance.quotas.settle(admission, usage.input_tokens, usage.output_tokens)
            governance.settle_shared(shared, usage.input_tokens, usage.output_tokens)
            settled = True
            # The settlement (spend, reservation closed) and the LLM_CALL event
            # below ride one transaction: nothing awaits in between.
            governance.record_spend(call, cost, reservation_id=reservation.id)
            model = completion.model or target.model
            observer.llm_call(usage, cost, target.provider, model, version, message=routed)
            observer.call_ended(completion.finish_reason, None)
            for warning in warnings:
                observer.budget_warning(warning)
            return LlmResult(
                completion=completion, provider=target.provider, model=model, cost=cost
            )
        finally:
            if not settled:
                governance.quotas.settle(admission, 0, 0)
            governance.settle_shared(shared, 0, 0)  # the leases, if not settled above
            governance.quotas.release(admission)

    async def _reserve(self, call: CallScopes, worst: Decimal) -> Reservation:
        """Reserves the call's worst case in its budgets, waiting (`budget:<name>`) while
        other calls' open reservations leave no room; BudgetExceeded once it can never fit."""
        ledger, caller = self._governance.ledger, self._caller
        ticket = ledger.ticket(caller.priority)
        waiting_for = ""
        watch = WaitWatch(None)
        try:
            while True:
                try:
                    return ledger.reserve(call, caller.run_id, caller.max_cost, worst, ticket)
                except BudgetBusy as busy:
                    ledger.enqueue(ticket, busy.key)
                    if not waiting_for:
                        waiting_for = f"budget:{busy.budget_name}"
                        self._observer.waiting(waiting_for)
                        watch = self._governance.alerts.watch_wait(
                            "budget_wait", waiting_for, self._who()
                        )
                await ledger.wait_for_room()
        finally:
            watch.end()
            if ticket.keys:
                ledger.dequeue(ticket)
            if waiting_for:
                self._observer.resumed(waiting_for)


def estimate_tokens(request: CompletionRequest) -> int:
    """The input tokens a request is reserved for, before the provider counts them."""
    characters = sum(len(message.content) for message in request.messages)
    return max(1, math.ceil(characters / CHARACTERS_PER_TOKEN))


def _cause(error: BaseException) -> str:
    if isinstance(error, ProviderError):
        return f"{error.kind}: {error}"
    return f"{type(error).__name__}: {error}"
