"""The step context an agent receives, and its governed LLM gateway."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from podium.core.failures import BUDGET_EXCEEDED, CIRCUIT_OPEN, failure_from_exception
from podium.core.jsonvalues import jsonable
from podium.core.model import AttemptRecord, StepRecord, Usage
from podium.core.states import EventType
from podium.governance.breakers import BreakerState, CircuitBreaker, classify
from podium.governance.budgets import BudgetExceeded
from podium.governance.quotas import QuotaTimeout
from podium.governance.scopes import CallScopes
from podium.governance.service import Transition
from podium.plugins.api import (
    AgentError,
    CompletionRequest,
    LlmResult,
    ProviderError,
    Target,
    ToolSpec,
)

if TYPE_CHECKING:
    from podium.engine.executor import RunExecutor

# What the gateway reserves for output when a step sets no max_tokens (and
# then sends to the provider, so that the reservation is a true bound).
DEFAULT_MAX_TOKENS = 1024
_TRANSITION_EVENTS = {
    BreakerState.OPEN: EventType.CIRCUIT_OPENED,
    BreakerState.HALF_OPEN: EventType.CIRCUIT_HALF_OPEN,
    BreakerState.CLOSED: EventType.CIRCUIT_CLOSED,
}


class StepLlmGateway:
    """Every LLM call of one attempt, governed: circuit breakers (provider,
    model, agent), then quota admission (all or nothing; the step shows
    WAITING `quota:<name>` meanwhile), then a budget reservation of the
    worst-case cost in every scope, then the call; the reservation is
    settled to the actual cost or released exactly once, whatever happens."""

    __slots__ = ("_attempt", "_executor", "_step")

    def __init__(self, executor: RunExecutor, step: StepRecord, attempt: AttemptRecord) -> None:
        self._executor = executor
        self._step = step
        self._attempt = attempt

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
        while True:
            earliest: float | None = None
            blocked = ""
            for index, target in enumerate(targets):
                last = index == len(targets) - 1
                breakers = self._breakers(target)
                closed = self._blocked(breakers)
                if closed:
                    retry = [b.retry_in() for b in closed]
                    wait = max((r for r in retry if r is not None), default=0.0)
                    earliest = wait if earliest is None else min(earliest, wait)
                    blocked = blocked or closed[0].name
                    continue
                try:
                    return await self._call(target, replace(request, model=target.model), breakers)
                except ProviderError as error:
                    if last or classify(error) != "failure":
                        raise
                    # Unavailable: the next target gets the call.
            # Every target's breaker is open.
            if self._executor.plan.steps[self._step.step_id].spec.fail_fast:
                raise AgentError(
                    f"circuit breaker {blocked} does not admit calls", code=CIRCUIT_OPEN
                )
            self._executor.step_waiting(self._step, None, f"breaker:{blocked}")
            await self._executor.engine.clock.sleep(max(earliest or 0.0, 0.01))
            self._executor.step_resumed(self._step, f"breaker:{blocked}")

    def _breakers(self, target: Target) -> list[CircuitBreaker]:
        board = self._executor.engine.governance.breakers
        return [
            board.breaker(f"provider:{target.provider}"),
            board.breaker(f"model:{target.provider}/{target.model}"),
            board.breaker(f"agent:{self._step.agent}"),
        ]

    def _blocked(self, breakers: list[CircuitBreaker]) -> list[CircuitBreaker]:
        """The breakers refusing a call to this target, or none; a half-open
        breaker's probe slot is taken only when every breaker lets the call
        through (else it is handed back at once)."""
        governance = self._executor.engine.governance
        with governance.transitions() as seen:
            blocked = [b for b in breakers if b.state is BreakerState.OPEN]
            if not blocked:
                taken: list[CircuitBreaker] = []
                for breaker in breakers:
                    (taken if breaker.allow() else blocked).append(breaker)
                if blocked:
                    for breaker in taken:
                        breaker.record_ignored()
        self._announce(seen)
        return blocked

    def _record(self, breakers: list[CircuitBreaker], outcome: Any, cause: str) -> None:
        with self._executor.engine.governance.transitions() as seen:
            for breaker in breakers:
                breaker.record(outcome, cause)
        self._announce(seen)

    def _announce(self, transitions: list[Transition]) -> None:
        for transition in transitions:
            self._executor.emit(
                _TRANSITION_EVENTS[BreakerState(transition.state)],
                step=self._step,
                breaker=transition.breaker,
                message=transition.cause,
            )

    async def _call(
        self, target: Target, request: CompletionRequest, breakers: list[CircuitBreaker]
    ) -> LlmResult:
        ex = self._executor
        engine = ex.engine
        governance = engine.governance
        implementation = engine.registry.provider(target.provider)
        if implementation is None:
            raise ProviderError(f"unknown provider {target.provider!r}", kind="bad_request")
        call = CallScopes(
            provider=target.provider,
            model=target.model,
            agent=self._step.agent,
            workflow=ex.run.workflow_id,
        )
        max_tokens = request.max_tokens or DEFAULT_MAX_TOKENS
        input_estimate = _estimate_tokens(request)
        demand = governance.quotas.plan(call, input_estimate, max_tokens)
        waited: list[str] = []

        def on_wait(reason: str) -> None:
            waited.append(reason)
            ex.step_waiting(self._step, None, reason)

        try:
            admission = await governance.quotas.admit(demand, None, on_wait=on_wait)
        except QuotaTimeout as error:
            raise AgentError(
                f"quota {error.reason} cannot admit this call", code="podium.QuotaExceeded"
            ) from None
        if waited:
            ex.step_resumed(self._step, waited[0])
        settled = False
        try:
            worst = governance.prices.worst_case(
                target.provider, target.model, input_estimate, max_tokens
            )
            try:
                reservation = governance.ledger.reserve(call, ex.run.run_id, ex.run.max_cost, worst)
            except BudgetExceeded as error:
                governance.quotas.settle(admission, 0, 0)
                settled = True
                raise AgentError(str(error), code=BUDGET_EXCEEDED, retryable=False) from None
            try:
                completion = await implementation.complete(request)
            except BaseException as error:
                if isinstance(error, ProviderError) and error.charge_reservation:
                    # The provider may have billed a call whose usage never
                    # arrived: charge its worst case (fail closed), and say so.
                    governance.ledger.settle(reservation, worst)
                    governance.record_spend(call, worst)
                    ex.record_llm_call(
                        self._step,
                        self._attempt,
                        Usage(calls=1),
                        worst,
                        target.provider,
                        target.model,
                        governance.prices.lookup(target.provider, target.model)[1],
                        message=f"no usage reported ({error}); charged the reservation",
                    )
                else:
                    governance.ledger.release(reservation)
                outcome = classify(error)
                if not isinstance(error, asyncio.CancelledError):
                    self._record(breakers, outcome, _cause(error))
                if isinstance(error, ProviderError) and error.kind == "rate_limited":
                    governance.quotas.feedback_rate_limited(call, error.retry_after or 1.0)
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
            settled = True
            governance.record_spend(call, cost)
            model = completion.model or target.model
            ex.record_llm_call(
                self._step, self._attempt, usage, cost, target.provider, model, version
            )
            for warning in warnings:
                ex.emit(
                    EventType.BUDGET_WARNING,
                    step=self._step,
                    budget=warning.budget_name,
                    cost=warning.spent,
                    message=f"spent {warning.spent} of {warning.limit} "
                    f"({warning.warn_fraction:.0%} warning threshold)",
                )
            return LlmResult(
                completion=completion, provider=target.provider, model=model, cost=cost
            )
        finally:
            if not settled:
                governance.quotas.settle(admission, 0, 0)
            governance.quotas.release(admission)


def _estimate_tokens(request: CompletionRequest) -> int:
    # About four characters per token for English text; providers correct
    # the reservation when the call settles.
    characters = sum(len(message.content) for message in request.messages)
    return max(1, math.ceil(characters / 4))


def _arguments_text(arguments: Mapping[str, Any]) -> str:
    try:
        return json.dumps(arguments, sort_keys=True, default=str)[:2000]
    except (TypeError, ValueError):
        return repr(arguments)[:2000]


def _cause(error: BaseException) -> str:
    if isinstance(error, ProviderError):
        return f"{error.kind}: {error}"
    return f"{type(error).__name__}: {error}"


class AttemptContext:
    """Implements podium.plugins.api.StepContext for one attempt."""

    __slots__ = ("_attempt", "_config", "_executor", "_input", "_llm", "_step")

    def __init__(
        self,
        executor: RunExecutor,
        step: StepRecord,
        attempt: AttemptRecord,
        input: Any,
        config: Mapping[str, Any],
    ) -> None:
        self._executor = executor
        self._step = step
        self._attempt = attempt
        self._input = input
        self._config = config
        self._llm = StepLlmGateway(executor, step, attempt)

    @property
    def run_id(self) -> str:
        return self._executor.run.run_id

    @property
    def step_id(self) -> str:
        return self._step.step_id

    @property
    def attempt(self) -> int:
        return self._attempt.number

    @property
    def input(self) -> Any:
        return self._input

    @property
    def config(self) -> Mapping[str, Any]:
        return self._config

    @property
    def llm(self) -> StepLlmGateway:
        return self._llm

    @property
    def tools(self) -> list[ToolSpec]:
        registry = self._executor.engine.registry
        specs = []
        for name in self._executor.plan.steps[self._step.step_id].spec.tools:
            tool = registry.tool(name)
            if tool is not None:
                specs.append(ToolSpec(tool.name, tool.description, tool.parameters))
        return specs

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> Any:
        ex = self._executor
        allowed = ex.plan.steps[self._step.step_id].spec.tools
        tool = ex.engine.registry.tool(name) if name in allowed else None
        ex.emit(
            EventType.TOOL_CALLED,
            step=self._step,
            attempt=self._attempt.number,
            item=self._attempt.item,
            tool=name,
            message=_arguments_text(arguments),
        )
        try:
            if tool is None:
                listed = ", ".join(allowed) or "none"
                raise AgentError(
                    f"tool {name!r} is not one of this step's tools ({listed})",
                    code="podium.UnknownTool",
                )
            result = jsonable(await tool.call(arguments))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            failure = failure_from_exception(error)
            ex.emit(
                EventType.TOOL_RESULT,
                step=self._step,
                attempt=self._attempt.number,
                item=self._attempt.item,
                tool=name,
                failure=failure,
                message=failure.message,
            )
            if isinstance(error, AgentError):
                raise
            raise AgentError(
                f"tool {name!r} failed: {failure.message}", code=failure.type
            ) from None
        ex.emit(
            EventType.TOOL_RESULT,
            step=self._step,
            attempt=self._attempt.number,
            item=self._attempt.item,
            tool=name,
            output=result,
        )
        return result

    def report(self, progress: float, message: str = "") -> None:
        self._executor.report_progress(self._step, self._attempt, progress, message)
