"""Runs one workflow run as a DAG.

A step starts as soon as its dependencies allow (its trigger rule), never
level by level; one task exists per started step, never per pending one, and
agent calls take a run-level slot and a server-wide slot (by priority).
Every state change is recorded and becomes a RunEvent with the run's next
sequence number. When the run fails or is cancelled, the compensations of its
succeeded steps run in reverse order of completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from podium.core.clock import sleep_until
from podium.core.expressions import ExpressionError
from podium.core.failures import CANCELLED, INTERRUPTED, INVALID_OUTPUT, TIMEOUT, Failure
from podium.core.jsonvalues import from_json_numbers
from podium.core.model import AttemptRecord, Event, ItemRecord, RunRecord, StepRecord, Usage
from podium.core.states import AttemptState, EventType, RunState, StepState
from podium.engine.compensation import run_compensation
from podium.engine.step_runner import StepRunner
from podium.engine.validation import Plan, StepPlan

if TYPE_CHECKING:
    from podium.engine.engine import Engine

log = logging.getLogger("podium.engine")

_FINAL_EVENT = {
    RunState.SUCCEEDED: EventType.RUN_SUCCEEDED,
    RunState.PARTIALLY_SUCCEEDED: EventType.RUN_PARTIALLY_SUCCEEDED,
    RunState.FAILED: EventType.RUN_FAILED,
    RunState.CANCELLED: EventType.RUN_CANCELLED,
}
_IN_PROGRESS = frozenset({StepState.READY, StepState.RUNNING, StepState.WAITING})


class RunExecutor:
    def __init__(self, engine: Engine, run: RunRecord, steps: list[StepRecord], plan: Plan) -> None:
        self.engine = engine
        self.run = run
        self.plan = plan
        self.steps = {step.step_id: step for step in steps}
        self.limit = max(
            1, run.max_concurrency or plan.spec.max_concurrency or engine.max_concurrency
        )
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.finished = asyncio.Event()
        self.stopping = False  # server shutdown: leave everything resumable
        self._run_slots = asyncio.Semaphore(self.limit)
        self._input_scope = from_json_numbers(run.input)
        self._step_scope: dict[str, dict[str, Any]] = {}
        self._ending: RunState | None = None  # FAILED or CANCELLED once decided
        self._ending_failure: Failure | None = None
        self._approvals: dict[str, asyncio.Future[tuple[bool, str]]] = {}
        self._resumed: set[str] = set()
        # Succeeded steps in completion order (compensations run in reverse).
        self._completed: list[str] = []
        self._deps_ended: dict[str, int] = {}
        self._deps_succeeded: dict[str, int] = {}
        self._timer: asyncio.Task[None] | None = None
        self._compensation: asyncio.Task[None] | None = None
        self._finalizing = False

    # -- lifecycle -------------------------------------------------------------------

    def created(self) -> None:
        """Records a new run (PENDING, with its steps' rows written by the engine)."""
        self.emit(EventType.RUN_CREATED)
        self._save_run()

    def start(self) -> None:
        """Starts a new run, or resumes one read back from the store."""
        if self.run.state == RunState.PENDING:
            self.run.state = RunState.RUNNING
            self.run.start_time = self.engine.clock.now()
            self.emit(EventType.RUN_STARTED)
            self._save_run()
        in_progress: list[StepRecord] = []
        done = [s for s in self.steps.values() if s.state == StepState.SUCCEEDED]
        done.sort(key=lambda s: (s.end_time or 0.0, s.position))
        self._completed = [s.step_id for s in done]
        for step in self.steps.values():
            if step.state.is_final:
                self._step_scope[step.step_id] = _scope_entry(step)
            elif step.state in _IN_PROGRESS:
                self._interrupted(step)
                in_progress.append(step)
        if self.plan.spec.timeout is not None and self.run.start_time is not None:
            self._timer = asyncio.create_task(
                self._run_deadline(self.run.start_time + self.plan.spec.timeout)
            )
        self._count_dependencies()
        failed = [
            s
            for s in self.steps.values()
            if s.state == StepState.FAILED and self.plan.steps[s.step_id].spec.on_failure == "FAIL"
        ]
        cancelled = any(s.state == StepState.CANCELLED for s in self.steps.values())
        if failed:  # the server stopped between a step's failure and the run's end
            self._fail(failed[0])
        elif cancelled:  # ...or while the run was being cancelled
            self._end(RunState.CANCELLED, Failure(CANCELLED, "cancelled before a restart"))
            self._abandon_pending(StepState.CANCELLED, "run cancelled")
        else:
            for step in in_progress:
                self._resumed.add(step.step_id)
                self._launch(step)
            for step_id in self.plan.dependencies:
                if self.steps[step_id].state == StepState.PENDING:
                    self._consider(step_id)
        self._maybe_finish()

    def cancel(self, reason: str) -> None:
        if self._ending is not None or self.run.state.is_final:
            return
        self._end(RunState.CANCELLED, Failure(CANCELLED, reason or "cancelled by request"))
        self._abandon_pending(StepState.CANCELLED, reason or "run cancelled")
        self._cancel_tasks()
        self._maybe_finish()

    async def stop(self) -> None:
        """Server shutdown: cancels running agents without recording it, so
        that the run resumes (in-flight attempts re-run) after a restart."""
        self.stopping = True
        extra = [t for t in (self._timer, self._compensation) if t is not None]
        tasks = [*self.tasks.values(), *extra]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- dependencies and trigger rules ------------------------------------------------

    def _count_dependencies(self) -> None:
        for step_id, deps in self.plan.dependencies.items():
            states = [self.steps[d].state for d in deps]
            self._deps_ended[step_id] = sum(1 for state in states if state.is_final)
            self._deps_succeeded[step_id] = states.count(StepState.SUCCEEDED)

    def _consider(self, step_id: str, cause: StepRecord | None = None) -> None:
        """Starts or skips a PENDING step once its dependencies allow it
        (counters, not scans: a join of n steps costs O(n), not O(n^2))."""
        if self._ending is not None:
            return
        total = len(self.plan.dependencies[step_id])
        ended = self._deps_ended[step_id]
        succeeded = self._deps_succeeded[step_id]
        rule = self.plan.steps[step_id].spec.trigger_rule
        if rule == "ALL_SUCCEEDED":
            if ended > succeeded:
                culprit = (
                    cause if cause is not None and cause.state != StepState.SUCCEEDED else None
                )
                if culprit is None:
                    culprit = next(
                        self.steps[d]
                        for d in self.plan.dependencies[step_id]
                        if self.steps[d].state.is_final
                        and self.steps[d].state != StepState.SUCCEEDED
                    )
                self.step_skipped(
                    self.steps[step_id],
                    f"dependency {culprit.step_id!r} {culprit.state.name.lower()}",
                )
            elif succeeded == total:
                self._launch(self.steps[step_id])
        elif ended == total:
            if rule == "ANY_SUCCEEDED" and total and not succeeded:
                self.step_skipped(self.steps[step_id], "no dependency succeeded")
            else:
                self._launch(self.steps[step_id])

    def _launch(self, step: StepRecord) -> None:
        runner = StepRunner(self, step, self.plan.steps[step.step_id])
        task = asyncio.create_task(runner.run(), name=f"step:{self.run.run_id}:{step.step_id}")
        self.tasks[step.step_id] = task
        # A done-callback, not a `finally`: a task cancelled before its first
        # step never runs its body, and its step must still end.
        task.add_done_callback(lambda _: self._step_task_done(step))

    def _step_task_done(self, step: StepRecord) -> None:
        self.tasks.pop(step.step_id, None)
        if self.stopping:
            return
        if not step.state.is_final:
            self.step_cancelled(step)
        self._maybe_finish()

    def _step_ended(self, step: StepRecord) -> None:
        self._step_scope[step.step_id] = _scope_entry(step)
        succeeded = step.state == StepState.SUCCEEDED
        for dependent in self.plan.dependents[step.step_id]:
            self._deps_ended[dependent] += 1
            if succeeded:
                self._deps_succeeded[dependent] += 1
            if self.steps[dependent].state == StepState.PENDING:
                self._consider(dependent, step)

    def scope(self, plan: StepPlan) -> dict[str, Any]:
        """What a step's expressions see: the run input and the steps they read."""
        entries = self._step_scope
        return {
            "input": self._input_scope,
            "steps": {s: entries[s] for s in plan.refs if s in entries},
        }

    # -- outcomes reported by step runners -------------------------------------------------

    def step_succeeded(self, step: StepRecord, output: Any) -> None:
        now = self.engine.clock.now()
        step.state = StepState.SUCCEEDED
        step.output = output
        step.end_time = now
        step.due_time = None
        step.reason = ""
        self._completed.append(step.step_id)
        self._save_step(step)
        self.emit(
            EventType.STEP_SUCCEEDED,
            step=step,
            attempt=_plain_attempts(step),
            output=output,
            usage=step.usage.copy(),
            cost=step.cost,
        )
        self._step_ended(step)

    def step_failed(self, step: StepRecord, failure: Failure) -> None:
        step.state = StepState.FAILED
        step.failure = failure
        step.end_time = self.engine.clock.now()
        step.due_time = None
        step.reason = failure.message
        self._save_step(step)
        self.emit(
            EventType.STEP_FAILED,
            step=step,
            attempt=_plain_attempts(step),
            failure=failure,
            message=failure.message,
            usage=step.usage.copy(),
            cost=step.cost,
        )
        if self.plan.steps[step.step_id].spec.on_failure == "FAIL":
            self._fail(step)
        else:
            self._step_ended(step)

    def step_skipped(self, step: StepRecord, reason: str) -> None:
        step.state = StepState.SKIPPED
        step.reason = reason
        step.end_time = self.engine.clock.now()
        self._save_step(step)
        self.emit(EventType.STEP_SKIPPED, step=step, message=reason)
        self._step_ended(step)

    def step_cancelled(self, step: StepRecord) -> None:
        reason = self._ending_failure.message if self._ending_failure else "cancelled"
        step.state = StepState.CANCELLED
        step.reason = reason
        step.end_time = self.engine.clock.now()
        step.due_time = None
        self._save_step(step)
        self.emit(EventType.STEP_CANCELLED, step=step, message=reason)
        self._step_scope[step.step_id] = _scope_entry(step)

    def step_waiting(self, step: StepRecord, due: float | None, reason: str) -> None:
        step.state = StepState.WAITING
        step.due_time = due
        step.reason = reason
        self._save_step(step)
        self.emit(EventType.STEP_WAITING, step=step, due_time=due, message=reason)

    def step_resumed(self, step: StepRecord, reason: str) -> None:
        """A step that waited inside an attempt (quota, breaker) runs again."""
        step.state = StepState.RUNNING
        step.reason = ""
        self._save_step(step)
        self.emit(EventType.STEP_PROGRESS, step=step, message=f"resumed after {reason}")

    def cache_hit(self, step: StepRecord, output: Any) -> None:
        self.emit(EventType.STEP_CACHE_HIT, step=step, output=output, message="result from cache")

    # -- attempts, retries and items ---------------------------------------------------------

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """A run-level slot (FIFO), then a server-wide one (by priority)."""
        async with self._run_slots:
            slots = self.engine.slots
            await slots.acquire(self.run.priority)
            try:
                yield
            finally:
                slots.release()

    def attempt_started(self, step: StepRecord, attempt: AttemptRecord) -> None:
        step.attempts.append(attempt)
        self.engine.running_steps += 1
        event = EventType.STEP_STARTED
        if attempt.item == -1:
            step.state = StepState.RUNNING
            step.due_time = None
            step.reason = ""
        else:
            event = EventType.ITEM_STARTED
            if step.state != StepState.RUNNING:
                step.state = StepState.RUNNING
                step.reason = ""
        self._save_step(step, attempt)
        self.emit(event, step=step, attempt=attempt.number, item=attempt.item)

    def attempt_ended(
        self,
        step: StepRecord,
        attempt: AttemptRecord,
        state: AttemptState,
        failure: Failure | None,
    ) -> None:
        self.engine.running_steps -= 1
        attempt.state = state
        attempt.end_time = self.engine.clock.now()
        attempt.failure = failure
        self.engine.recorder.attempt(self.run.run_id, step.step_id, attempt)

    def retrying(
        self,
        step: StepRecord,
        attempt: AttemptRecord,
        failure: Failure,
        delay: float,
        due: float,
        item: int,
        *,
        announce_failure: bool = True,
    ) -> None:
        if item == -1:
            step.state = StepState.WAITING
            step.due_time = due
            step.reason = f"retrying in {delay:.3g}s after {failure.type}"
            self._save_step(step)
            if announce_failure:  # a resumed step's failure was announced before
                self.emit(
                    EventType.STEP_FAILED,
                    step=step,
                    attempt=attempt.number,
                    failure=failure,
                    message=failure.message,
                )
        self.emit(
            EventType.STEP_RETRYING,
            step=step,
            attempt=attempt.number,
            failure=failure,
            message=f"attempt {attempt.number} failed ({failure.type}); retrying",
            retry_delay=delay,
            due_time=due,
            item=item,
        )

    def resumed(self, step: StepRecord) -> bool:
        """Whether the step was in progress when the server last stopped."""
        return step.step_id in self._resumed

    async def finished_items(self, step: StepRecord) -> list[ItemRecord]:
        """Items a fan-out or loop finished before a restart (none for a new step)."""
        if step.step_id not in self._resumed:
            return []
        return await self.engine.store.items_of(self.run.run_id, step.step_id)

    def item_finished(self, step: StepRecord, record: ItemRecord) -> None:
        self.engine.recorder.item(self.run.run_id, step.step_id, record)
        self._save_step(step)
        if record.succeeded:
            self.emit(EventType.ITEM_SUCCEEDED, step=step, item=record.index, output=record.output)
        else:
            self.emit(
                EventType.ITEM_FAILED,
                step=step,
                item=record.index,
                failure=record.failure,
                message=record.failure.message if record.failure else "",
            )

    # -- approvals ---------------------------------------------------------------------------

    def approval_requested(self, step: StepRecord, prompt: str, due: float | None) -> None:
        step.state = StepState.WAITING
        step.due_time = due
        step.reason = "waiting for approval"
        self._save_step(step)
        self._set_run_state(RunState.WAITING_APPROVAL)
        self.emit(EventType.APPROVAL_REQUESTED, step=step, message=prompt, due_time=due)

    def approval_future(self, step_id: str) -> asyncio.Future[tuple[bool, str]]:
        future = self._approvals.get(step_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._approvals[step_id] = future
            self._set_run_state(RunState.WAITING_APPROVAL)
        return future

    def approval_done(self, step_id: str) -> None:
        self._approvals.pop(step_id, None)
        if self.stopping:
            return  # the run still waits for approval, in the store too
        if not self._approvals and self.run.state == RunState.WAITING_APPROVAL:
            self._set_run_state(RunState.RUNNING)

    def waiting_approval(self, step_id: str) -> bool:
        future = self._approvals.get(step_id)
        return future is not None and not future.done()

    def resolve_approval(self, step_id: str, approve: bool, comment: str) -> None:
        future = self._approvals[step_id]
        step = self.steps[step_id]
        self.emit(
            EventType.APPROVAL_RESOLVED,
            step=step,
            message=comment,
            decision=1 if approve else 2,
        )
        future.set_result((approve, comment))

    # -- ending the run ------------------------------------------------------------------------

    def _fail(self, step: StepRecord) -> None:
        failure = step.failure or Failure("podium.Internal", "step failed")
        self._end(
            RunState.FAILED,
            Failure(
                failure.type,
                f"step {step.step_id!r} failed: {failure.message}",
                failure.retryable,
            ),
        )
        self._abandon_pending(StepState.SKIPPED, f"run failed: step {step.step_id!r} failed")
        self._cancel_tasks()

    async def _run_deadline(self, due: float) -> None:
        await sleep_until(self.engine.clock, due)
        if self._ending is None and not self.run.state.is_final:
            timeout = self.plan.spec.timeout or 0
            self._end(RunState.FAILED, Failure(TIMEOUT, f"run timed out after {timeout:g}s"))
            self._abandon_pending(StepState.SKIPPED, "run timed out")
            self._cancel_tasks()
            self._maybe_finish()

    def _end(self, state: RunState, failure: Failure) -> None:
        if self._ending is None:
            self._ending = state
            self._ending_failure = failure

    def _cancel_tasks(self) -> None:
        current = asyncio.current_task()
        for task in self.tasks.values():
            if task is not current:
                task.cancel()

    def _abandon_pending(self, state: StepState, reason: str) -> None:
        now = self.engine.clock.now()
        event = EventType.STEP_SKIPPED if state == StepState.SKIPPED else EventType.STEP_CANCELLED
        for step in self.steps.values():
            if step.state != StepState.PENDING or step.step_id in self.tasks:
                continue
            step.state = state
            step.reason = reason
            step.end_time = now
            self._save_step(step)
            self.emit(event, step=step, message=reason)

    def _maybe_finish(self) -> None:
        if self.tasks or self.finished.is_set() or self.stopping or self._finalizing:
            return
        if self._ending is None:
            pending = [s.step_id for s in self.steps.values() if not s.state.is_final]
            if pending:
                # Unreachable for a valid DAG; fail loudly rather than hang.
                self._end(
                    RunState.FAILED,
                    Failure("podium.Internal", f"steps never became ready: {pending}"),
                )
                self._abandon_pending(StepState.SKIPPED, "run failed")
        self._finalizing = True
        if self._ending is not None and self._compensations():
            self._compensation = asyncio.create_task(
                self._compensate_then_finish(), name=f"compensate:{self.run.run_id}"
            )
        else:
            self._finish()

    def _compensations(self) -> list[StepRecord]:
        return [
            self.steps[step_id]
            for step_id in reversed(self._completed)
            if self.plan.steps[step_id].spec.compensate is not None
        ]

    async def _compensate_then_finish(self) -> None:
        try:
            for step in self._compensations():
                await run_compensation(self, step)
        finally:
            if not self.stopping:
                self._finish()

    def _finish(self) -> None:
        run = self.run
        if self._timer is not None:
            self._timer.cancel()
        if self._ending is None:
            try:
                run.output = self._run_output()
                failed = any(s.state == StepState.FAILED for s in self.steps.values())
                run.state = RunState.PARTIALLY_SUCCEEDED if failed else RunState.SUCCEEDED
            except ExpressionError as error:
                run.state = RunState.FAILED
                run.failure = Failure(INVALID_OUTPUT, f"output mapping failed: {error}")
        else:
            run.state = self._ending
            run.failure = self._ending_failure
        run.end_time = self.engine.clock.now()
        self.emit(
            _FINAL_EVENT[run.state],
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
        self.engine.governance.ledger.close_run(run.run_id)

    def _run_output(self) -> dict[str, Any]:
        if self.plan.output:
            entries = self._step_scope
            scope = {
                "input": self._input_scope,
                "steps": {s: entries[s] for s in self.plan.output_refs if s in entries},
            }
            return {key: expr.evaluate(scope) for key, expr in self.plan.output.items()}
        return {
            s: self.steps[s].output
            for s in self.plan.final_steps
            if self.steps[s].state == StepState.SUCCEEDED
        }

    def _interrupted(self, step: StepRecord) -> None:
        """Resuming after a restart: an attempt that was in flight is recorded
        as interrupted (the step runner then decides whether it runs again)."""
        now = self.engine.clock.now()
        for attempt in step.attempts:
            if attempt.state == AttemptState.RUNNING:
                attempt.state = AttemptState.INTERRUPTED
                attempt.end_time = now
                attempt.failure = Failure(
                    INTERRUPTED, "the server stopped during this attempt", True
                )
                self.engine.recorder.attempt(self.run.run_id, step.step_id, attempt)
                self.emit(
                    EventType.STEP_FAILED,
                    step=step,
                    attempt=attempt.number,
                    item=attempt.item,
                    failure=attempt.failure,
                    message="interrupted by a server restart",
                )

    # -- what agents call through their context -------------------------------------------

    def record_llm_call(
        self,
        step: StepRecord,
        attempt: AttemptRecord,
        usage: Usage,
        cost: Decimal,
        provider: str,
        model: str,
        price_version: str = "",
        message: str = "",
    ) -> None:
        for target in (attempt.usage, step.usage, self.run.usage):
            target.add(usage)
        attempt.cost += cost
        step.cost += cost
        self.run.cost += cost
        self.emit(
            EventType.LLM_CALL,
            step=step,
            attempt=attempt.number,
            item=attempt.item,
            usage=usage,
            cost=cost,
            provider=provider,
            model=model,
            price_version=price_version,
            message=message,
        )

    def report_progress(
        self, step: StepRecord, attempt: AttemptRecord, progress: float, message: str
    ) -> None:
        if attempt.state != AttemptState.RUNNING:
            return
        self.emit(
            EventType.STEP_PROGRESS,
            step=step,
            attempt=attempt.number,
            item=attempt.item,
            progress=min(1.0, max(0.0, float(progress))),
            message=message,
        )

    # -- recording ----------------------------------------------------------------------------

    def _set_run_state(self, state: RunState) -> None:
        if self.run.state != state and not self.run.state.is_final:
            self.run.state = state
            self._save_run()

    def _save_run(self) -> None:
        self.engine.recorder.run(self.run)

    def _save_step(self, step: StepRecord, attempt: AttemptRecord | None = None) -> None:
        recorder = self.engine.recorder
        recorder.step(self.run.run_id, step)
        if attempt is not None:
            recorder.attempt(self.run.run_id, step.step_id, attempt)

    def emit(self, type: EventType, *, step: StepRecord | None = None, **fields: Any) -> None:
        """Records an event with the run's next sequence number."""
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


def _scope_entry(step: StepRecord) -> dict[str, Any]:
    """What `steps.<id>` is in CEL: the state always, the output once succeeded."""
    entry: dict[str, Any] = {"state": step.state.name}
    if step.state == StepState.SUCCEEDED:
        entry["output"] = from_json_numbers(step.output)
    return entry


def _plain_attempts(step: StepRecord) -> int:
    """The attempt number for a step's final event: its attempts when it ran
    its agent once per attempt; 0 for fan-outs and loops (items have their own)."""
    if step.items_total or step.iterations:
        return 0
    return len(step.attempts)
