"""Runs one workflow run as a DAG.

A step starts as soon as every one of its dependencies has succeeded (never
level by level), within the run's concurrency limit. One asyncio task exists
per *running* step, never per pending one. Every state change is recorded and
becomes a RunEvent with the run's next sequence number.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from podium.engine.context import AttemptContext
from podium.engine.expressions import ExpressionError, from_json_numbers
from podium.engine.failures import failure_from_exception
from podium.engine.model import (
    CANCELLED,
    INTERRUPTED,
    INVALID_INPUT,
    INVALID_OUTPUT,
    UNKNOWN_AGENT,
    AttemptRecord,
    Event,
    Failure,
    RunRecord,
    StepRecord,
    Usage,
)
from podium.engine.states import AttemptState, EventType, RunState, StepState
from podium.engine.validation import Plan
from podium.plugins.api import AgentError

if TYPE_CHECKING:
    from podium.engine.engine import Engine

log = logging.getLogger("podium.engine")


class RunExecutor:
    def __init__(self, engine: Engine, run: RunRecord, steps: list[StepRecord], plan: Plan) -> None:
        self.engine = engine
        self.run = run
        self.plan = plan
        self.steps = {step.step_id: step for step in steps}
        self.limit = max(
            1, run.max_concurrency or plan.spec.max_concurrency or engine.max_concurrency
        )
        self.running: dict[str, asyncio.Task[None]] = {}
        self.ready: deque[str] = deque()
        self.unmet: dict[str, int] = {}
        self.finished = asyncio.Event()
        self._input_scope = from_json_numbers(run.input)
        self._outputs: dict[str, dict[str, Any]] = {}
        self._ending: RunState | None = None  # FAILED or CANCELLED once decided
        self._ending_failure: Failure | None = None
        self._stopping = False  # server shutdown: leave everything resumable

    # -- lifecycle ---------------------------------------------------------

    def created(self) -> None:
        """Records a new run (PENDING, with its steps' rows written by the engine)."""
        self._emit(EventType.RUN_CREATED)
        self._save_run()

    def start(self) -> None:
        """Starts a new run, or resumes one read back from the store."""
        clock = self.engine.clock
        if self.run.state == RunState.PENDING:
            self.run.state = RunState.RUNNING
            self.run.start_time = clock.now()
            self._emit(EventType.RUN_STARTED)
            self._save_run()
        for step in self.steps.values():
            if step.state == StepState.SUCCEEDED:
                self._outputs[step.step_id] = {"output": step.output}
            elif step.state in (StepState.RUNNING, StepState.READY):
                self._interrupted(step)
        failed = [s for s in self.steps.values() if s.state == StepState.FAILED]
        if failed:
            # The server stopped between a step's failure and the run's end.
            self._fail(failed[0])
        for step_id, deps in self.plan.dependencies.items():
            step = self.steps[step_id]
            if step.state != StepState.PENDING:
                continue
            unmet = sum(1 for d in deps if self.steps[d].state != StepState.SUCCEEDED)
            self.unmet[step_id] = unmet
            if unmet == 0:
                self.ready.append(step_id)
        self._pump()
        self._maybe_finish()

    def cancel(self, reason: str) -> None:
        if self._ending is not None or self.run.state.is_final:
            return
        self._ending = RunState.CANCELLED
        self._ending_failure = Failure(CANCELLED, reason or "cancelled by request")
        self._abandon_pending(StepState.CANCELLED, reason or "run cancelled")
        for task in self.running.values():
            task.cancel()
        self._maybe_finish()

    async def stop(self) -> None:
        """Server shutdown: cancels running agents without recording it, so
        that the run resumes (in-flight attempts re-run) after a restart."""
        self._stopping = True
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- scheduling ----------------------------------------------------------

    def _pump(self) -> None:
        while self.ready and len(self.running) < self.limit and self._ending is None:
            step_id = self.ready.popleft()
            self.running[step_id] = asyncio.create_task(
                self._execute(self.steps[step_id]), name=f"step:{self.run.run_id}:{step_id}"
            )

    def _maybe_finish(self) -> None:
        if self.running or self.finished.is_set() or self._stopping:
            return
        if self._ending is None:
            if self.ready:
                return
            pending = [s.step_id for s in self.steps.values() if not s.state.is_final]
            if pending:
                # Unreachable for a valid DAG; fail loudly rather than hang.
                self._ending = RunState.FAILED
                self._ending_failure = Failure(
                    "podium.Internal", f"steps never became ready: {pending}"
                )
                self._abandon_pending(StepState.SKIPPED, "run failed")
        self._finish()

    def _finish(self) -> None:
        run = self.run
        if self._ending is None:
            try:
                run.output = self._run_output()
                run.state = RunState.SUCCEEDED
            except ExpressionError as error:
                run.state = RunState.FAILED
                run.failure = Failure(INVALID_OUTPUT, f"output mapping failed: {error}")
        else:
            run.state = self._ending
            run.failure = self._ending_failure
        run.end_time = self.engine.clock.now()
        final_type = {
            RunState.SUCCEEDED: EventType.RUN_SUCCEEDED,
            RunState.FAILED: EventType.RUN_FAILED,
            RunState.CANCELLED: EventType.RUN_CANCELLED,
        }[run.state]
        self._emit(
            final_type,
            failure=run.failure,
            output=run.output,
            usage=run.usage.copy(),
            cost=run.cost,
        )
        self._save_run()
        self.finished.set()
        # Stay readable from memory until the final state is committed, so a
        # read never falls back to an older row in the store.
        self.engine.recorder.after_commit(lambda: self.engine.run_finished(self))

    def _run_output(self) -> dict[str, Any]:
        if self.plan.output:
            scope = {
                "input": self._input_scope,
                "steps": {s: self._outputs[s] for s in self.plan.output_refs if s in self._outputs},
            }
            return {key: expr.evaluate(scope) for key, expr in self.plan.output.items()}
        return {s: self.steps[s].output for s in self.plan.final_steps}

    # -- one step ------------------------------------------------------------

    async def _execute(self, step: StepRecord) -> None:
        try:
            await self._attempt(step)
        finally:
            self.running.pop(step.step_id, None)
            if not self._stopping:
                self._pump()
                self._maybe_finish()

    async def _attempt(self, step: StepRecord) -> None:
        clock = self.engine.clock
        spec = self.plan.steps[step.step_id]
        now = clock.now()
        attempt = AttemptRecord(
            number=len(step.attempts) + 1, state=AttemptState.RUNNING, start_time=now
        )
        step.attempts.append(attempt)
        step.state = StepState.RUNNING
        step.reason = ""
        if step.start_time is None:
            step.start_time = now
        agent = self.engine.registry.agent(spec.agent)
        failure: Failure | None = None
        try:
            step.input = self._evaluate_input(step.step_id)
        except ExpressionError as error:
            failure = Failure(INVALID_INPUT, str(error))
        if agent is None and failure is None:
            failure = Failure(UNKNOWN_AGENT, f"agent {spec.agent!r} is not registered")
        self.engine.running_steps += 1
        self._save_step(step, attempt)
        self._emit(EventType.STEP_STARTED, step=step, attempt=attempt.number)
        try:
            if failure is not None or agent is None:
                self._step_failed(step, attempt, failure or Failure(UNKNOWN_AGENT, spec.agent))
                return
            context = AttemptContext(self, step, attempt, step.input, spec.config)
            try:
                output = await agent.run(context)
                output = _json_compatible(output)
            except asyncio.CancelledError:
                if self._stopping:
                    raise
                self._step_cancelled(step, attempt)
                return
            except Exception as error:
                self._step_failed(step, attempt, failure_from_exception(error))
                return
            self._step_succeeded(step, attempt, output)
        finally:
            self.engine.running_steps -= 1

    def _evaluate_input(self, step_id: str) -> dict[str, Any]:
        expressions = self.plan.inputs[step_id]
        if not expressions:
            return {}
        outputs = self._outputs
        scope = {
            "input": self._input_scope,
            "steps": {s: outputs[s] for s in self.plan.input_refs[step_id]},
        }
        return {key: expr.evaluate(scope) for key, expr in expressions.items()}

    def _step_succeeded(self, step: StepRecord, attempt: AttemptRecord, output: Any) -> None:
        now = self.engine.clock.now()
        attempt.state = AttemptState.SUCCEEDED
        attempt.end_time = now
        step.state = StepState.SUCCEEDED
        step.output = output
        step.end_time = now
        self._outputs[step.step_id] = {"output": from_json_numbers(output)}
        self._save_step(step, attempt)
        self._emit(
            EventType.STEP_SUCCEEDED,
            step=step,
            attempt=attempt.number,
            output=output,
            usage=step.usage.copy(),
            cost=step.cost,
        )
        for dependent in self.plan.dependents[step.step_id]:
            remaining = self.unmet.get(dependent)
            if remaining is None:
                continue
            self.unmet[dependent] = remaining - 1
            if remaining == 1 and self.steps[dependent].state == StepState.PENDING:
                self.ready.append(dependent)

    def _step_failed(self, step: StepRecord, attempt: AttemptRecord, failure: Failure) -> None:
        now = self.engine.clock.now()
        attempt.state = AttemptState.FAILED
        attempt.failure = failure
        attempt.end_time = now
        step.state = StepState.FAILED
        step.failure = failure
        step.end_time = now
        self._save_step(step, attempt)
        self._emit(
            EventType.STEP_FAILED,
            step=step,
            attempt=attempt.number,
            failure=failure,
            message=failure.message,
            usage=step.usage.copy(),
            cost=step.cost,
        )
        self._fail(step)

    def _step_cancelled(self, step: StepRecord, attempt: AttemptRecord) -> None:
        now = self.engine.clock.now()
        reason = self._ending_failure.message if self._ending_failure else "cancelled"
        attempt.state = AttemptState.CANCELLED
        attempt.end_time = now
        attempt.failure = Failure(CANCELLED, reason)
        step.state = StepState.CANCELLED
        step.reason = reason
        step.end_time = now
        self._save_step(step, attempt)
        self._emit(EventType.STEP_CANCELLED, step=step, attempt=attempt.number, message=reason)

    def _interrupted(self, step: StepRecord) -> None:
        """A step that was running when the server stopped runs again."""
        if step.attempts and step.attempts[-1].state == AttemptState.RUNNING:
            attempt = step.attempts[-1]
            attempt.state = AttemptState.INTERRUPTED
            attempt.end_time = self.engine.clock.now()
            attempt.failure = Failure(INTERRUPTED, "the server stopped during this attempt", True)
            self.engine.recorder.attempt(self.run.run_id, step.step_id, attempt)
        step.state = StepState.PENDING
        step.reason = "interrupted by a server restart; runs again"
        self._save_step(step)
        self._emit(
            EventType.STEP_FAILED,
            step=step,
            attempt=len(step.attempts),
            failure=Failure(INTERRUPTED, "the server stopped during this attempt", True),
            message=step.reason,
        )

    def _fail(self, step: StepRecord) -> None:
        if self._ending is not None:
            return
        failure = step.failure or Failure("podium.Internal", "step failed")
        self._ending = RunState.FAILED
        self._ending_failure = Failure(
            failure.type, f"step {step.step_id!r} failed: {failure.message}", failure.retryable
        )
        self._abandon_pending(StepState.SKIPPED, f"run failed: step {step.step_id!r} failed")
        current = asyncio.current_task()
        for task in self.running.values():
            if task is not current:
                task.cancel()

    def _abandon_pending(self, state: StepState, reason: str) -> None:
        now = self.engine.clock.now()
        self.ready.clear()
        event = EventType.STEP_SKIPPED if state == StepState.SKIPPED else EventType.STEP_CANCELLED
        for step in self.steps.values():
            if step.state != StepState.PENDING:
                continue
            step.state = state
            step.reason = reason
            step.end_time = now
            self._save_step(step)
            self._emit(event, step=step, message=reason)

    # -- what agents call through their context ------------------------------

    def record_llm_call(
        self,
        step: StepRecord,
        attempt: AttemptRecord,
        usage: Usage,
        cost: Decimal,
        provider: str,
        model: str,
    ) -> None:
        for target in (attempt.usage, step.usage, self.run.usage):
            target.add(usage)
        attempt.cost += cost
        step.cost += cost
        self.run.cost += cost
        self._emit(
            EventType.LLM_CALL,
            step=step,
            attempt=attempt.number,
            usage=usage,
            cost=cost,
            provider=provider,
            model=model,
        )

    def report_progress(
        self, step: StepRecord, attempt: AttemptRecord, progress: float, message: str
    ) -> None:
        if step.state != StepState.RUNNING or attempt is not step.attempts[-1]:
            return
        self._emit(
            EventType.STEP_PROGRESS,
            step=step,
            attempt=attempt.number,
            progress=min(1.0, max(0.0, float(progress))),
            message=message,
        )

    # -- recording -------------------------------------------------------------

    def _save_run(self) -> None:
        self.engine.recorder.run(self.run)

    def _save_step(self, step: StepRecord, attempt: AttemptRecord | None = None) -> None:
        recorder = self.engine.recorder
        recorder.step(self.run.run_id, step)
        if attempt is not None:
            recorder.attempt(self.run.run_id, step.step_id, attempt)

    def _emit(self, type: EventType, *, step: StepRecord | None = None, **fields: Any) -> None:
        run = self.run
        run.last_sequence += 1
        event = Event(
            run_id=run.run_id,
            sequence=run.last_sequence,
            time=self.engine.clock.now(),
            type=type,
            workflow_id=run.workflow_id,
            run_state=run.state,
            step_id=step.step_id if step is not None else "",
            step_state=step.state if step is not None else None,
            **fields,
        )
        self.engine.recorder.event(event)


def _json_compatible(value: Any) -> Any:
    """Agents must return what JSON can hold; anything else fails the step."""
    if value is None or isinstance(value, str | bool | int | float):
        if isinstance(value, float) and value != value:  # NaN has no JSON form
            raise _invalid_output("NaN is not a JSON value")
        return value
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise _invalid_output(str(error)) from None


def _invalid_output(detail: str) -> Exception:
    return AgentError(
        f"agent output is not JSON-compatible: {detail}", code=INVALID_OUTPUT, retryable=False
    )
