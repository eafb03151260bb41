"""Runs one workflow run as a DAG: its lifecycle from start to final state.

A step starts as soon as its dependencies allow (scheduler.py decides); one
task exists per started step, never per pending one, and agent calls take a
run-level slot and a server-wide slot (by priority). The journal records
every state change as a RunEvent. When the run fails or is cancelled, the
compensations of its succeeded steps run in reverse order of completion.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from podium.core.clock import sleep_until
from podium.core.expressions import ExpressionError
from podium.core.failures import CANCELLED, INTERNAL, INVALID_OUTPUT, TIMEOUT, Failure
from podium.core.jsonvalues import (
    compact_json,
    from_json_numbers,
    remember_compact_json,
    shared_compact_json,
)
from podium.core.model import (
    CallbackRecord,
    NotificationRecord,
    RunRecord,
    SignalRecord,
    StepRecord,
)
from podium.core.schemas import first_violation
from podium.core.states import RunState, StepState
from podium.engine import rerun
from podium.engine.approvals import Approvals
from podium.engine.callbacks import CallbackBox
from podium.engine.compensation import run_compensation
from podium.engine.environment import RunEnvironment
from podium.engine.pausing import PauseGate
from podium.engine.run_journal import RunJournal
from podium.engine.scheduler import DependencyCounters, decide
from podium.engine.services import RunServices, StopSignal
from podium.engine.signals import SignalBox
from podium.engine.slots import RunSlots
from podium.engine.step_runner import StepOutcome, StepRunner
from podium.engine.step_values import oversized_output
from podium.engine.validation import Plan, StepPlan

log = logging.getLogger("podium.engine")

_IN_PROGRESS = frozenset({StepState.READY, StepState.RUNNING, StepState.WAITING})


class RunExecutor:
    def __init__(
        self,
        services: RunServices,
        run: RunRecord,
        steps: list[StepRecord],
        plan: Plan,
        *,
        on_finished: Callable[[RunExecutor], None],
        signals: list[SignalRecord] | None = None,
        callbacks: list[CallbackRecord] | None = None,
        notification: NotificationRecord | None = None,
        input_scope: dict[str, Any] | None = None,
    ) -> None:
        """`input_scope`: from_json_numbers(run.input), when the caller made it already."""
        self.services = services
        self.plan = plan
        self.journal = RunJournal(run, steps, services.recorder, services.clock, services.observer)
        self.stop_signal = StopSignal()
        self.approvals = Approvals(self.journal, self.stop_signal)
        self.signals = SignalBox(self.journal, services.store, signals or [])
        self.callbacks = CallbackBox(self.journal, services.store, callbacks or [])
        # Made due (in the batch of the run's final state) when the run ends.
        self.notification = notification
        limit = max(
            1,
            run.max_concurrency or plan.spec.max_concurrency or services.default_max_concurrency,
        )
        # pause: closed while the run is PAUSED (also when read back PAUSED).
        self.gate = PauseGate(paused=run.state == RunState.PAUSED)
        # Steps that became ready while paused: launched by resume().
        self._held: list[str] = []
        self.env = RunEnvironment(
            services=services,
            journal=self.journal,
            approvals=self.approvals,
            slots=RunSlots(limit, services.slots, run.priority, self.gate),
            stop=self.stop_signal,
            signals=self.signals,
            callbacks=self.callbacks,
        )
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.finished = asyncio.Event()
        self._on_finished = on_finished
        self._input_scope = from_json_numbers(run.input) if input_scope is None else input_scope
        self._step_scope: dict[str, dict[str, Any]] = {}
        self._ending: RunState | None = None  # FAILED or CANCELLED once decided
        self._ending_failure: Failure | None = None
        self._resumed: set[str] = set()
        # Succeeded steps in completion order (compensations run in reverse).
        self._completed: list[str] = []
        self._counters: DependencyCounters | None = None
        by_id = self.journal.steps
        self._state_of: Callable[[str], StepState] = lambda step_id: by_id[step_id].state
        self._timer: asyncio.Task[None] | None = None
        self._compensation: asyncio.Task[None] | None = None
        self._finalizing = False

    @property
    def run(self) -> RunRecord:
        return self.journal.run

    @property
    def steps(self) -> dict[str, StepRecord]:
        return self.journal.steps

    # -- lifecycle -------------------------------------------------------------------

    def created(self) -> None:
        """Records a new run (PENDING, with its steps' rows written by the engine)."""
        self.journal.created()

    def start(self) -> None:
        """Starts a new run, or resumes one read back from the store."""
        if self.run.state == RunState.PENDING:
            self.journal.started()
        elif self.run.state == RunState.PAUSED and self.run.start_time is None:
            # Paused before it was admitted: it starts now (its clock runs), and
            # stays paused; RUN_PAUSED was recorded already.
            self.journal.started()
            self.run.state = RunState.PAUSED
            self.journal.save_run()
        else:
            self.journal.resumed()
        in_progress: list[StepRecord] = []
        # A re-run's reused steps are the original's (rerun.py): never compensated here.
        done = [
            s
            for s in self.steps.values()
            if s.state == StepState.SUCCEEDED and not rerun.is_reused(s)
        ]
        done.sort(key=lambda s: (s.end_time or 0.0, s.position))
        self._completed = [s.step_id for s in done]
        relay = self.services.relay
        keep = None if relay is None else relay.adopted(self.run.run_id)
        for step in self.steps.values():
            if step.state.is_final:
                self._step_scope[step.step_id] = _scope_entry(step)
            elif step.state in _IN_PROGRESS:
                # A child run goes on across its parent's restart: the
                # attempt that started it was not interrupted (child_steps.py).
                if self.plan.steps[step.step_id].spec.workflow is None:
                    self.journal.interrupted(step, keep)
                in_progress.append(step)
        if self.plan.spec.timeout is not None and self.run.start_time is not None:
            self._timer = asyncio.create_task(
                self._run_deadline(self.run.start_time + self.plan.spec.timeout)
            )
        self._counters = DependencyCounters(
            self.plan.dependencies,
            self.plan.dependents,
            {step_id: step.state for step_id, step in self.steps.items()},
        )
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
            self.journal.abandon_pending(StepState.CANCELLED, "run cancelled", self.tasks)
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
        self.journal.abandon_pending(StepState.CANCELLED, reason or "run cancelled", self.tasks)
        self._cancel_tasks()
        self._maybe_finish()

    # -- pause and resume (see pausing.py) ------------------------------------------

    @property
    def paused(self) -> bool:
        return self.gate.paused

    def pause(self, reason: str, actor: str) -> None:
        if self.gate.paused or self._ending is not None or self.run.state.is_final:
            return
        self.gate.close()
        self.journal.paused(reason, actor)

    def resume(self, actor: str) -> None:
        if not self.gate.paused or self._ending is not None or self.run.state.is_final:
            return
        state = RunState.WAITING_APPROVAL if self.approvals.any_pending else RunState.RUNNING
        if self.run.start_time is None:
            state = RunState.PENDING  # paused before admission: start() starts it
        self.journal.unpaused(state, actor)
        self.gate.open()
        held, self._held = self._held, []
        for step_id in held:
            if self.steps[step_id].state == StepState.PENDING:
                self._consider(step_id)
        self._maybe_finish()

    async def stop(self) -> None:
        """Server shutdown: cancels running agents without recording it, so
        that the run resumes (in-flight attempts re-run) after a restart."""
        self.stop_signal.stopping = True
        extra = [t for t in (self._timer, self._compensation) if t is not None]
        tasks = [*self.tasks.values(), *extra]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- approvals ---------------------------------------------------------------------

    def waiting_approval(self, step_id: str) -> bool:
        return self.approvals.waiting(step_id)

    def resolve_approval(self, step_id: str, approve: bool, comment: str, actor: str = "") -> None:
        self.approvals.resolve(step_id, approve, comment, actor)

    # -- scheduling ----------------------------------------------------------------------

    def _consider(self, step_id: str, cause: str = "") -> None:
        """Starts or skips a PENDING step once its dependencies allow it."""
        if self._ending is not None or step_id in self.tasks:
            return  # ending, or launched already (still PENDING until its task runs)
        counters = self._counters
        assert counters is not None
        steps = self.steps
        decision = decide(
            self.plan.steps[step_id].spec.trigger_rule,
            self.plan.dependencies[step_id],
            counters.ended[step_id],
            counters.succeeded[step_id],
            self._state_of,
            cause,
        )
        if decision.action == "launch":
            if self.gate.paused:
                if step_id not in self._held:
                    self._held.append(step_id)
                return
            self._launch(steps[step_id])
        elif decision.action == "skip":
            step = steps[step_id]
            self.journal.step_skipped(step, decision.reason)
            self._step_ended(step)

    def _launch(self, step: StepRecord) -> None:
        plan = self.plan.steps[step.step_id]
        runner = StepRunner(
            self.env,
            step,
            plan,
            self._scope(plan),
            resumed=step.step_id in self._resumed,
            on_outcome=self._step_outcome,
        )
        task = asyncio.create_task(runner.run(), name=f"step:{self.run.run_id}:{step.step_id}")
        self.tasks[step.step_id] = task
        # A done-callback, not a `finally`: a task cancelled before its first
        # step never runs its body, and its step must still end.
        task.add_done_callback(lambda done: self._step_task_done(step, done))

    def _step_task_done(self, step: StepRecord, task: asyncio.Task[None]) -> None:
        self.tasks.pop(step.step_id, None)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            # Recording the step's outcome itself failed (the runner catches
            # everything else): a bug, logged, and never a CANCELLED step.
            log.error(
                "step %r of run %s: recording its outcome failed",
                step.step_id,
                self.run.run_id,
                exc_info=error,
                extra={"run_id": self.run.run_id, "step_id": step.step_id},
            )
        if self.stop_signal.stopping:
            return
        if not step.state.is_final:
            if error is None:
                self._step_cancelled(step)
            else:
                self._step_outcome(
                    step,
                    StepOutcome(
                        StepState.FAILED,
                        failure=Failure(INTERNAL, f"{type(error).__name__}: {error}"),
                    ),
                )
        self._maybe_finish()

    def _step_outcome(self, step: StepRecord, outcome: StepOutcome) -> None:
        """A step runner's verdict: record it, then schedule what it unblocks."""
        journal = self.journal
        if outcome.state == StepState.SUCCEEDED:
            self._completed.append(step.step_id)
            journal.step_succeeded(step, outcome.output)
            self._step_ended(step, outcome.scope_output)
        elif outcome.state == StepState.FAILED:
            assert outcome.failure is not None
            journal.step_failed(step, outcome.failure)
            if self.plan.steps[step.step_id].spec.on_failure == "FAIL":
                self._fail(step)
            else:
                self._step_ended(step)
        elif outcome.state == StepState.SKIPPED:
            journal.step_skipped(step, outcome.reason)
            self._step_ended(step)
        else:
            self._step_cancelled(step)

    def _step_cancelled(self, step: StepRecord) -> None:
        reason = self._ending_failure.message if self._ending_failure else "cancelled"
        self.journal.step_cancelled(step, reason)
        self._step_scope[step.step_id] = _scope_entry(step)

    def _step_ended(self, step: StepRecord, scope_output: Any = None) -> None:
        self._step_scope[step.step_id] = _scope_entry(step, scope_output)
        counters = self._counters
        assert counters is not None
        succeeded = step.state == StepState.SUCCEEDED
        for dependent in counters.dependents(step.step_id):
            counters.count_end(dependent, succeeded)
            if self.steps[dependent].state == StepState.PENDING:
                self._consider(dependent, step.step_id)

    def _scope(self, plan: StepPlan) -> dict[str, Any]:
        """What a step's expressions see: the run input and the steps they read."""
        entries = self._step_scope
        return {
            "input": self._input_scope,
            "steps": {s: entries[s] for s in plan.refs if s in entries},
        }

    # -- ending the run ------------------------------------------------------------------------

    def _fail(self, step: StepRecord) -> None:
        failure = step.failure or Failure(INTERNAL, "step failed")
        self._end(
            RunState.FAILED,
            Failure(
                failure.type,
                f"step {step.step_id!r} failed: {failure.message}",
                failure.retryable,
            ),
        )
        self.journal.abandon_pending(
            StepState.SKIPPED, f"run failed: step {step.step_id!r} failed", self.tasks
        )
        self._cancel_tasks()

    async def _run_deadline(self, due: float) -> None:
        await sleep_until(self.services.clock, due)
        if self._ending is None and not self.run.state.is_final:
            timeout = self.plan.spec.timeout or 0
            self._end(RunState.FAILED, Failure(TIMEOUT, f"run timed out after {timeout:g}s"))
            self.journal.abandon_pending(StepState.SKIPPED, "run timed out", self.tasks)
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

    def _maybe_finish(self) -> None:
        if self.tasks or self.finished.is_set() or self.stop_signal.stopping or self._finalizing:
            return
        if self._held and self._ending is None:
            return  # paused with steps held: ResumeRun starts them
        if self._ending is None:
            pending = [s.step_id for s in self.steps.values() if not s.state.is_final]
            if pending:
                # Unreachable for a valid DAG; fail loudly rather than hang.
                self._end(
                    RunState.FAILED,
                    Failure(INTERNAL, f"steps never became ready: {pending}"),
                )
                self.journal.abandon_pending(StepState.SKIPPED, "run failed", self.tasks)
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
                await run_compensation(self.env, self.plan.steps[step.step_id], step)
        finally:
            if not self.stop_signal.stopping:
                self._finish()

    def _finish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._ending is None:
            try:
                output = self._run_output()
                oversized = oversized_output(output, "the run's output")
                violated = first_violation(self.plan.spec.output_schema, output)
                failed = any(s.state == StepState.FAILED for s in self.steps.values())
                state = RunState.PARTIALLY_SUCCEEDED if failed else RunState.SUCCEEDED
                if oversized is not None:
                    self.journal.finished(RunState.FAILED, oversized, None)
                elif violated is not None:
                    message = f"the run's output violates the workflow's output_schema: {violated}"
                    self.journal.finished(RunState.FAILED, Failure(INVALID_OUTPUT, message), None)
                else:
                    self.journal.finished(state, None, output)
            except ExpressionError as error:
                failure = Failure(INVALID_OUTPUT, f"output mapping failed: {error}")
                self.journal.finished(RunState.FAILED, failure, None)
            # A run is SUCCEEDED only with an output computed and committed:
            # whatever else goes wrong computing it ends the run FAILED, never
            # leaves it RUNNING with no task left to end it.
            except Exception as error:
                log.error(
                    "run %s: computing its output failed",
                    self.run.run_id,
                    exc_info=error,
                    extra={"run_id": self.run.run_id},
                )
                failure = Failure(INTERNAL, f"output failed: {type(error).__name__}: {error}")
                self.journal.finished(RunState.FAILED, failure, None)
        else:
            self.journal.finished(self._ending, self._ending_failure, None)
        if self.notification is not None:
            self.notification.state = "PENDING"
            self.notification.due_time = self.services.clock.now()
            self.services.store.put_notification(self.notification)
        self.finished.set()
        # Stay readable from memory until the final state is committed, so a
        # read never falls back to an older row in the store.
        self.services.recorder.after_commit(lambda: self._on_finished(self))
        self.services.governance.ledger.close_run(self.run.run_id)

    def _run_output(self) -> dict[str, Any]:
        if self.plan.output:
            entries = self._step_scope
            scope = {
                "input": self._input_scope,
                "steps": {s: entries[s] for s in self.plan.output_refs if s in entries},
            }
            return {key: expr.evaluate(scope) for key, expr in self.plan.output.items()}
        output = {
            s: self.steps[s].output
            for s in self.plan.final_steps
            if self.steps[s].state == StepState.SUCCEEDED
        }
        # Its text made of its parts' (a large step output's is encoded already),
        # for its size check, its row and its event (see shared_compact_json).
        try:
            parts = [f"{compact_json(s)}:{shared_compact_json(o)}" for s, o in output.items()]
        except ValueError:
            return output  # not JSON (checked outputs never are): the size check says so
        remember_compact_json(output, "{" + ",".join(parts) + "}")
        return output


def _scope_entry(step: StepRecord, scope_output: Any = None) -> dict[str, Any]:
    """What `steps.<id>` is in CEL: the state always, the output once succeeded
    (`scope_output`, when the step runner made it already)."""
    entry: dict[str, Any] = {"state": step.state.name}
    if step.state == StepState.SUCCEEDED:
        entry["output"] = from_json_numbers(step.output) if scope_output is None else scope_output
    return entry
