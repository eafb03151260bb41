"""The step context an agent receives for one attempt (podium.plugins.api.StepContext),
and the observer that turns what the governance gate reports into run events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from podium.core.failures import AgentError, failure_from_exception
from podium.core.jsonvalues import jsonable
from podium.core.model import AttemptRecord, StepRecord, Usage
from podium.core.spec import StepSpec
from podium.core.states import EventType
from podium.engine.agent_guard import guarded
from podium.engine.run_journal import RunJournal
from podium.engine.services import RunServices
from podium.engine.streaming import DeltaSink, StreamingGateway
from podium.governance.breakers import BreakerState
from podium.governance.budgets import BudgetWarning
from podium.governance.gate import Caller, LlmGate
from podium.governance.service import Transition
from podium.plugins.api import LlmGateway, ToolSpec
from podium.plugins.tool_arguments import check_arguments

_TRANSITION_EVENTS = {
    BreakerState.OPEN: EventType.CIRCUIT_OPENED,
    BreakerState.HALF_OPEN: EventType.CIRCUIT_HALF_OPEN,
    BreakerState.CLOSED: EventType.CIRCUIT_CLOSED,
}
# Tool arguments shown in a TOOL_CALLED event are cut to this many characters.
ARGUMENTS_SHOWN = 2000


class GateEvents:
    """Implements podium.governance.gate.GateObserver for one attempt: each
    report of the gate becomes a state change or an event of the step."""

    __slots__ = ("_attempt", "_journal", "_step")

    def __init__(self, journal: RunJournal, step: StepRecord, attempt: AttemptRecord) -> None:
        self._journal = journal
        self._step = step
        self._attempt = attempt

    def waiting(self, reason: str) -> None:
        journal = self._journal
        journal.step_waiting(self._step, None, reason)
        if journal.observer is not None:
            journal.observer.waiting(journal.run, self._step, self._attempt, reason)

    def resumed(self, reason: str) -> None:
        journal = self._journal
        journal.step_resumed(self._step, reason)
        if journal.observer is not None:
            journal.observer.resumed(journal.run, self._step, self._attempt, reason)

    def calling(self, provider: str, model: str) -> None:
        journal = self._journal
        if journal.observer is not None:
            journal.observer.llm_call_started(
                journal.run, self._step, self._attempt, provider, model
            )

    def call_ended(self, finish_reason: str, error: BaseException | None) -> None:
        journal = self._journal
        if journal.observer is not None:
            journal.observer.llm_call_ended(
                journal.run, self._step, self._attempt, finish_reason, error
            )

    def llm_call(
        self,
        usage: Usage,
        cost: Decimal,
        provider: str,
        model: str,
        price_version: str,
        message: str = "",
    ) -> None:
        journal = self._journal
        journal.llm_call(
            self._step, self._attempt, usage, cost, provider, model, price_version, message
        )
        if journal.observer is not None:
            journal.observer.llm_call_charged(
                journal.run, self._step, self._attempt, usage, cost, provider, model, price_version
            )

    def breaker_changed(self, transition: Transition) -> None:
        self._journal.emit(
            _TRANSITION_EVENTS[BreakerState(transition.state)],
            step=self._step,
            breaker=transition.breaker,
            message=transition.cause,
        )
        observer = self._journal.observer
        if observer is not None:
            observer.breaker_changed(
                self._journal.run, transition.breaker, transition.state, transition.cause
            )

    def budget_warning(self, warning: BudgetWarning) -> None:
        self._journal.emit(
            EventType.BUDGET_WARNING,
            step=self._step,
            budget=warning.budget_name,
            cost=warning.spent,
            message=f"spent {warning.spent} of {warning.limit} "
            f"({warning.warn_fraction:.0%} warning threshold)",
        )


class AttemptContext:
    """Implements podium.plugins.api.StepContext for one attempt."""

    __slots__ = ("_attempt", "_config", "_input", "_journal", "_llm", "_services", "_spec", "_step")

    def __init__(
        self,
        services: RunServices,
        journal: RunJournal,
        spec: StepSpec,
        step: StepRecord,
        attempt: AttemptRecord,
        input: Any,
        config: Mapping[str, Any],
    ) -> None:
        self._services = services
        self._journal = journal
        self._spec = spec
        self._step = step
        self._attempt = attempt
        self._input = input
        self._config = config
        # Built on first use: most agents never call a model.
        self._llm: LlmGateway | None = None

    @property
    def run_id(self) -> str:
        return self._journal.run.run_id

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
    def llm(self) -> LlmGateway:
        if self._llm is None:
            run, step = self._journal.run, self._step
            caller = Caller(
                run_id=run.run_id,
                workflow=run.workflow_id,
                agent=step.agent,
                max_cost=run.max_cost,
                fail_fast=self._spec.fail_fast,
                step_id=step.step_id,
                attempt=self._attempt.number,
                item=self._attempt.item,
                tenant=run.tenant,
                priority=run.priority,
            )
            gate = LlmGate(
                self._services.governance,
                self._services.registry.provider,
                caller,
                GateEvents(self._journal, step, self._attempt),
            )
            sink = self._services.deltas
            self._llm = gate if sink is None else streaming_gateway(gate, sink, caller)
        return self._llm

    @property
    def tools(self) -> Sequence[ToolSpec]:
        registry = self._services.registry
        specs = []
        for name in self._spec.tools:
            tool = registry.tool(name)
            if tool is not None:
                specs.append(ToolSpec(tool.name, tool.description, tool.parameters))
        return specs

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> Any:
        journal, step, attempt = self._journal, self._step, self._attempt
        allowed = self._spec.tools
        tool = self._services.registry.tool(name) if name in allowed else None
        journal.emit(
            EventType.TOOL_CALLED,
            step=step,
            attempt=attempt.number,
            item=attempt.item,
            tool=name,
            message=_arguments_text(arguments),
        )
        observer = journal.observer
        # The TOOL_CALLED event's sequence names the call within its run.
        call_id = f"call-{journal.run.last_sequence}"
        if observer is not None:
            observer.tool_call_started(journal.run, step, attempt, name, call_id)
        try:
            if tool is None:
                listed = ", ".join(allowed) or "none"
                raise AgentError(
                    f"tool {name!r} is not one of this step's tools ({listed})",
                    code="podium.UnknownTool",
                )
            check_arguments(tool, arguments)
            result = jsonable(await guarded(tool.call(arguments)))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            failure = failure_from_exception(error)
            journal.emit(
                EventType.TOOL_RESULT,
                step=step,
                attempt=attempt.number,
                item=attempt.item,
                tool=name,
                failure=failure,
                message=failure.message,
            )
            if observer is not None:
                observer.tool_call_ended(journal.run, step, attempt, call_id, failure)
            if isinstance(error, AgentError):
                raise
            raise AgentError(
                f"tool {name!r} failed: {failure.message}",
                code=failure.type,
                retryable=failure.retryable,
            ) from None
        journal.emit(
            EventType.TOOL_RESULT,
            step=step,
            attempt=attempt.number,
            item=attempt.item,
            tool=name,
            output=result,
        )
        if observer is not None:
            observer.tool_call_ended(journal.run, step, attempt, call_id, None)
        return result

    def report(self, progress: float, message: str = "") -> None:
        self._journal.progress(self._step, self._attempt, progress, message)


def streaming_gateway(gate: LlmGateway, sink: DeltaSink, caller: Caller) -> LlmGateway:
    return StreamingGateway(gate, sink, caller.run_id, caller.step_id, caller.item, caller.attempt)


def _arguments_text(arguments: Mapping[str, Any]) -> str:
    try:
        return json.dumps(arguments, sort_keys=True, default=str)[:ARGUMENTS_SHOWN]
    except (TypeError, ValueError):
        return repr(arguments)[:ARGUMENTS_SHOWN]
