"""`Telemetry` implements the engine's RunObserver: spans (a run, its
attempts, their LLM and tool calls), metrics and the runs' lifecycle log
lines. It observes what the engine decided and recorded; it changes nothing.

Spans have explicit parents (a run's span, an attempt's span), never the
ambient context: a run's steps are many tasks, and the ambient span of
whichever task reported would be wrong.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal

from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.util.types import AttributeValue

from podium.core.failures import Failure
from podium.core.model import AttemptRecord, RunRecord, StepRecord, Usage
from podium.core.states import AttemptState, RunState, StepState
from podium.telemetry import attributes as a
from podium.telemetry.logs import run_fields
from podium.telemetry.metrics import RunMetrics
from podium.telemetry.propagation import context_from, span_context_from, traceparent_of
from podium.telemetry.version import VERSION

log = logging.getLogger("podium.runs")

AttemptKey = tuple[str, str, int, int]  # run, step, item, attempt number


@dataclass(slots=True)
class _Call:
    provider: str
    model: str
    started: float
    span: trace.Span | None
    response_model: str = ""
    usage: Usage | None = None


@dataclass(slots=True)
class _Attempt:
    started: float
    span: trace.Span | None
    calls: list[_Call] = field(default_factory=list)
    # Seconds waited for quotas and breakers, and since when it waits now.
    waits: dict[str, float] = field(default_factory=dict)
    waiting: tuple[str, float] | None = None


@dataclass(slots=True)
class _Run:
    started: float
    span: trace.Span | None


class Telemetry:
    """Spans when given a tracer provider, metrics when given a RunMetrics;
    lifecycle log lines always."""

    def __init__(
        self, tracer_provider: TracerProvider | None = None, metrics: RunMetrics | None = None
    ) -> None:
        self.tracer: Tracer | None = (
            None if tracer_provider is None else tracer_provider.get_tracer("podium", VERSION)
        )
        self.metrics = metrics
        self._runs: dict[str, _Run] = {}
        self._attempts: dict[AttemptKey, _Attempt] = {}
        self._tools: dict[tuple[str, str], tuple[float, str, trace.Span | None]] = {}

    # -- what logs ask ----------------------------------------------------------------

    def trace_ids(self, run_id: str) -> tuple[str, str] | None:
        """The trace and span id (hex) of a run's open span, for log lines."""
        run = self._runs.get(run_id)
        if run is None or run.span is None:
            return None
        context = run.span.get_span_context()
        return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)

    # -- runs -----------------------------------------------------------------------------

    def run_started(self, run: RunRecord, *, resumed: bool) -> str:
        span = None
        tracer = self.tracer
        if tracer is not None:
            links = []
            if resumed:
                first = span_context_from(run.trace_context)
                if first is not None:
                    links.append(Link(first, {"podium.link": "run before restart"}))
            span = tracer.start_span(
                f"{a.INVOKE_WORKFLOW} {run.workflow_id}",
                context=context_from(run.trace_parent),
                kind=SpanKind.INTERNAL,
                links=links,
                attributes={
                    a.OPERATION: a.INVOKE_WORKFLOW,
                    a.RUN_ID: run.run_id,
                    a.WORKFLOW_ID: run.workflow_id,
                    a.WORKFLOW_VERSION: run.workflow_version,
                    a.RUN_RESUMED: resumed,
                },
            )
        self._runs[run.run_id] = _Run(time.perf_counter(), span)
        if self.metrics is not None:
            self.metrics.runs_started.add(
                1, {a.WORKFLOW_ID: run.workflow_id, a.RUN_RESUMED: resumed}
            )
        log.info(
            "run %s of workflow %s %s",
            run.run_id,
            run.workflow_id,
            "resumed after a restart" if resumed else "started",
            extra=_with_trace(run_fields(run.run_id, workflow_id=run.workflow_id), span),
        )
        return "" if span is None else traceparent_of(span)

    def run_finished(self, run: RunRecord) -> None:
        entry = self._runs.pop(run.run_id, None)
        state = run.state.name
        elapsed = None if entry is None else time.perf_counter() - entry.started
        if entry is not None and entry.span is not None:
            span = entry.span
            span.set_attributes(
                {
                    a.RUN_STATE: state,
                    a.COST: float(run.cost),
                    a.INPUT_TOKENS: run.usage.input_tokens,
                    a.OUTPUT_TOKENS: run.usage.output_tokens,
                }
            )
            _fail_span(span, run.failure if run.state == RunState.FAILED else None)
            span.end()
        if self.metrics is not None:
            labels = {a.WORKFLOW_ID: run.workflow_id, a.RUN_STATE: state}
            self.metrics.runs_finished.add(1, labels)
            if elapsed is not None:
                self.metrics.run_duration.record(elapsed, labels)
        ids = _with_trace(
            run_fields(run.run_id, workflow_id=run.workflow_id),
            None if entry is None else entry.span,
        )
        if run.state == RunState.FAILED and run.failure is not None:
            log.warning(
                "run %s failed: %s: %s",
                run.run_id,
                run.failure.type,
                run.failure.message,
                extra=ids,
            )
        else:
            log.info("run %s ended %s, cost %s", run.run_id, state, run.cost, extra=ids)

    def stop(self) -> None:
        """Server shutdown: open spans end (so that they are exported), marked
        as suspended; their runs resume, with a new span, at the next start."""
        for attempt in self._attempts.values():
            for call in attempt.calls:
                if call.span is not None:
                    call.span.end()
            if attempt.span is not None:
                attempt.span.set_attribute(a.ATTEMPT_STATE, "SUSPENDED")
                attempt.span.end()
        for _, _, span in self._tools.values():
            if span is not None:
                span.end()
        for run in self._runs.values():
            if run.span is not None:
                run.span.set_attribute(a.RUN_STATE, "SUSPENDED")
                run.span.end()
        self._attempts.clear()
        self._tools.clear()
        self._runs.clear()

    # -- steps and attempts -----------------------------------------------------------

    def step_ended(self, run: RunRecord, step: StepRecord) -> None:
        metrics = self.metrics
        if metrics is None or step.start_time is None or step.end_time is None:
            return
        metrics.step_duration.record(
            max(0.0, step.end_time - step.start_time),
            {
                a.WORKFLOW_ID: run.workflow_id,
                a.STEP_ID: step.step_id,
                a.STEP_STATE: _name(step.state),
            },
        )

    def attempt_started(
        self, run: RunRecord, step: StepRecord, attempt: AttemptRecord, queued: float
    ) -> None:
        if self.tracer is None and self.metrics is None:
            return
        span = None
        owner = self._runs.get(run.run_id)
        if self.tracer is not None and owner is not None and owner.span is not None:
            attributes: dict[str, AttributeValue] = {
                a.OPERATION: a.INVOKE_AGENT,
                a.AGENT_NAME: step.agent,
                a.RUN_ID: run.run_id,
                a.WORKFLOW_ID: run.workflow_id,
                a.STEP_ID: step.step_id,
                a.ATTEMPT: attempt.number,
                a.SLOT_WAIT: queued,
            }
            if attempt.item >= 0:
                attributes[a.ITEM] = attempt.item
            span = self.tracer.start_span(
                f"{a.INVOKE_AGENT} {step.agent}",
                context=trace.set_span_in_context(owner.span),
                kind=SpanKind.INTERNAL,
                attributes=attributes,
            )
        self._attempts[_key(run, step, attempt)] = _Attempt(time.perf_counter(), span)
        if self.metrics is not None and queued > 0:
            self.metrics.waits.record(queued, {a.WORKFLOW_ID: run.workflow_id, a.WAIT_KIND: "slot"})

    def attempt_traceparent(self, run: RunRecord, step: StepRecord, attempt: AttemptRecord) -> str:
        entry = self._attempts.get(_key(run, step, attempt))
        return "" if entry is None or entry.span is None else traceparent_of(entry.span)

    def attempt_ended(self, run: RunRecord, step: StepRecord, attempt: AttemptRecord) -> None:
        entry = self._attempts.pop(_key(run, step, attempt), None) if self._attempts else None
        if entry is None:
            if attempt.failure is not None and attempt.state == AttemptState.FAILED:
                self._log_failed(run, step, attempt, None)
            return
        state = _name(attempt.state)
        if entry.span is not None:
            span = entry.span
            span.set_attributes(
                {
                    a.ATTEMPT_STATE: state,
                    a.COST: float(attempt.cost),
                    a.INPUT_TOKENS: attempt.usage.input_tokens,
                    a.OUTPUT_TOKENS: attempt.usage.output_tokens,
                    a.QUOTA_WAIT: entry.waits.get("quota", 0.0),
                    a.BREAKER_WAIT: entry.waits.get("breaker", 0.0),
                }
            )
            failed = attempt.state != AttemptState.SUCCEEDED
            _fail_span(span, attempt.failure if failed else None)
            span.end()
        if self.metrics is not None:
            labels: dict[str, AttributeValue] = {
                a.WORKFLOW_ID: run.workflow_id,
                a.STEP_ID: step.step_id,
                a.AGENT_NAME: step.agent,
                a.ATTEMPT_STATE: state,
            }
            if attempt.failure is not None:
                labels[a.ERROR_TYPE] = attempt.failure.type
            self.metrics.attempt_duration.record(time.perf_counter() - entry.started, labels)
        if attempt.failure is not None and attempt.state == AttemptState.FAILED:
            self._log_failed(run, step, attempt, entry.span)

    def _log_failed(
        self, run: RunRecord, step: StepRecord, attempt: AttemptRecord, span: trace.Span | None
    ) -> None:
        failure = attempt.failure
        if failure is not None:
            log.info(
                "run %s step %s attempt %d failed: %s: %s",
                run.run_id,
                step.step_id,
                attempt.number,
                failure.type,
                failure.message,
                extra=_with_trace(
                    run_fields(
                        run.run_id,
                        workflow_id=run.workflow_id,
                        step_id=step.step_id,
                        attempt=attempt.number,
                        item=attempt.item,
                    ),
                    span,
                ),
            )

    def retrying(
        self,
        run: RunRecord,
        step: StepRecord,
        attempt: AttemptRecord,
        failure: Failure,
        delay: float,
    ) -> None:
        owner = self._runs.get(run.run_id)
        if owner is not None and owner.span is not None:
            owner.span.add_event(
                "podium.retry",
                {
                    a.STEP_ID: step.step_id,
                    a.ATTEMPT: attempt.number,
                    a.ERROR_TYPE: failure.type,
                    a.RETRY_DELAY: delay,
                },
            )
        if self.metrics is not None:
            self.metrics.retries.add(
                1,
                {
                    a.WORKFLOW_ID: run.workflow_id,
                    a.STEP_ID: step.step_id,
                    a.ERROR_TYPE: failure.type,
                },
            )

    def waiting(
        self, run: RunRecord, step: StepRecord, attempt: AttemptRecord, reason: str
    ) -> None:
        entry = self._attempts.get(_key(run, step, attempt))
        if entry is not None and entry.waiting is None:
            entry.waiting = (reason, time.perf_counter())

    def resumed(
        self, run: RunRecord, step: StepRecord, attempt: AttemptRecord, reason: str
    ) -> None:
        entry = self._attempts.get(_key(run, step, attempt))
        if entry is None or entry.waiting is None:
            return
        waited_for, since = entry.waiting
        entry.waiting = None
        kind = waited_for.partition(":")[0]
        seconds = time.perf_counter() - since
        entry.waits[kind] = entry.waits.get(kind, 0.0) + seconds
        if self.metrics is not None:
            self.metrics.waits.record(
                seconds,
                {a.WORKFLOW_ID: run.workflow_id, a.WAIT_KIND: kind, a.WAIT_REASON: waited_for},
            )

    # -- LLM and tool calls ---------------------------------------------------------------

    def llm_call_started(
        self, run: RunRecord, step: StepRecord, attempt: AttemptRecord, provider: str, model: str
    ) -> None:
        entry = self._attempts.get(_key(run, step, attempt))
        if entry is None:
            return
        span = None
        if self.tracer is not None and entry.span is not None:
            span = self.tracer.start_span(
                f"{a.CHAT} {model}",
                context=trace.set_span_in_context(entry.span),
                kind=SpanKind.CLIENT,
                attributes={
                    a.OPERATION: a.CHAT,
                    a.PROVIDER: provider,
                    a.REQUEST_MODEL: model,
                    a.RUN_ID: run.run_id,
                    a.STEP_ID: step.step_id,
                    a.ATTEMPT: attempt.number,
                },
            )
        entry.calls.append(_Call(provider, model, time.perf_counter(), span))

    def llm_call_charged(
        self,
        run: RunRecord,
        step: StepRecord,
        attempt: AttemptRecord,
        usage: Usage,
        cost: Decimal,
        provider: str,
        model: str,
        price_version: str,
    ) -> None:
        entry = self._attempts.get(_key(run, step, attempt))
        call = entry.calls[-1] if entry is not None and entry.calls else None
        if call is not None:
            call.response_model = model
            call.usage = usage
            if call.span is not None:
                call.span.set_attributes(
                    {
                        a.RESPONSE_MODEL: model,
                        a.INPUT_TOKENS: usage.input_tokens,
                        a.OUTPUT_TOKENS: usage.output_tokens,
                        a.COST: float(cost),
                        a.PRICE_VERSION: price_version,
                    }
                )
        if self.metrics is not None:
            labels: dict[str, AttributeValue] = {
                a.PROVIDER: provider,
                a.REQUEST_MODEL: call.model if call is not None else model,
                a.RESPONSE_MODEL: model,
                a.WORKFLOW_ID: run.workflow_id,
                a.TENANT: run.tenant,
            }
            self.metrics.cost.add(float(cost), labels)

    def llm_call_ended(
        self,
        run: RunRecord,
        step: StepRecord,
        attempt: AttemptRecord,
        finish_reason: str,
        error: BaseException | None,
    ) -> None:
        entry = self._attempts.get(_key(run, step, attempt))
        if entry is None or not entry.calls:
            return
        call = entry.calls.pop()
        error_type = "" if error is None else _error_type(error)
        if call.span is not None:
            if finish_reason:
                call.span.set_attribute(a.FINISH_REASONS, [finish_reason])
            if error is not None:
                call.span.set_attribute(a.ERROR_TYPE, error_type)
                call.span.set_status(Status(StatusCode.ERROR, str(error)[:500]))
            call.span.end()
        metrics = self.metrics
        if metrics is None:
            return
        labels: dict[str, AttributeValue] = {
            a.OPERATION: a.CHAT,
            a.PROVIDER: call.provider,
            a.REQUEST_MODEL: call.model,
        }
        if call.response_model:
            labels[a.RESPONSE_MODEL] = call.response_model
        if error_type:
            labels[a.ERROR_TYPE] = error_type
        metrics.operation_duration.record(time.perf_counter() - call.started, labels)
        if call.usage is not None and error is None:
            metrics.token_usage.record(call.usage.input_tokens, {**labels, a.TOKEN_TYPE: "input"})
            metrics.token_usage.record(call.usage.output_tokens, {**labels, a.TOKEN_TYPE: "output"})

    def tool_call_started(
        self, run: RunRecord, step: StepRecord, attempt: AttemptRecord, tool: str, call_id: str
    ) -> None:
        entry = self._attempts.get(_key(run, step, attempt))
        if entry is None:
            return
        span = None
        if self.tracer is not None and entry.span is not None:
            span = self.tracer.start_span(
                f"{a.EXECUTE_TOOL} {tool}",
                context=trace.set_span_in_context(entry.span),
                kind=SpanKind.INTERNAL,
                attributes={
                    a.OPERATION: a.EXECUTE_TOOL,
                    a.TOOL_NAME: tool,
                    a.TOOL_CALL_ID: call_id,
                    a.TOOL_TYPE: "function",
                    a.RUN_ID: run.run_id,
                    a.STEP_ID: step.step_id,
                    a.ATTEMPT: attempt.number,
                },
            )
        self._tools[(run.run_id, call_id)] = (time.perf_counter(), tool, span)

    def tool_call_ended(
        self,
        run: RunRecord,
        step: StepRecord,
        attempt: AttemptRecord,
        call_id: str,
        failure: Failure | None,
    ) -> None:
        entry = self._tools.pop((run.run_id, call_id), None)
        if entry is None:
            return
        started, tool, span = entry
        if span is not None:
            _fail_span(span, failure)
            span.end()
        if self.metrics is not None:
            labels: dict[str, AttributeValue] = {a.TOOL_NAME: tool, a.OPERATION: a.EXECUTE_TOOL}
            if failure is not None:
                labels[a.ERROR_TYPE] = failure.type
            self.metrics.tool_calls.add(1, labels)
            self.metrics.operation_duration.record(time.perf_counter() - started, labels)

    def breaker_changed(self, run: RunRecord, breaker: str, state: str, cause: str) -> None:
        owner = self._runs.get(run.run_id)
        if owner is not None and owner.span is not None:
            owner.span.add_event(
                "podium.breaker",
                {a.BREAKER: breaker, a.BREAKER_STATE: state, "podium.cause": cause},
            )
        if self.metrics is not None:
            self.metrics.breaker_transitions.add(1, {a.BREAKER: breaker, a.BREAKER_STATE: state})
        log.warning(
            "breaker %s is %s (%s)",
            breaker,
            state,
            cause,
            extra=run_fields(run.run_id, workflow_id=run.workflow_id),
        )


def _with_trace(fields: dict[str, object], span: trace.Span | None) -> dict[str, object]:
    """A log line's ids with the trace and span of `span`, when there is one."""
    if span is not None:
        context = span.get_span_context()
        fields["trace_id"] = trace.format_trace_id(context.trace_id)
        fields["span_id"] = trace.format_span_id(context.span_id)
    return fields


def _key(run: RunRecord, step: StepRecord, attempt: AttemptRecord) -> AttemptKey:
    return (run.run_id, step.step_id, attempt.item, attempt.number)


def _name(state: StepState | AttemptState) -> str:
    return state.name


def _fail_span(span: trace.Span, failure: Failure | None) -> None:
    if failure is None:
        return
    span.set_attribute(a.ERROR_TYPE, failure.type)
    span.set_status(Status(StatusCode.ERROR, f"{failure.type}: {failure.message}"[:500]))


def _error_type(error: BaseException) -> str:
    kind = getattr(error, "kind", None)
    if isinstance(kind, str) and kind:
        return kind
    return type(error).__qualname__
