"""A run's journal: every state change of the run, its steps and their
attempts is recorded here and becomes a RunEvent with the run's next
sequence number. The journal records; it decides nothing (the executor and
the step runners decide, then tell the journal).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from decimal import Decimal
from typing import Any

from podium.core.clock import Clock
from podium.core.failures import INTERRUPTED, Failure
from podium.core.model import AttemptRecord, Event, ItemRecord, RunRecord, StepRecord, Usage
from podium.core.states import AttemptState, EventType, RunState, StepState
from podium.engine.observer import RunObserver
from podium.engine.recorder import Recorder

FINAL_EVENT = {
    RunState.SUCCEEDED: EventType.RUN_SUCCEEDED,
    RunState.PARTIALLY_SUCCEEDED: EventType.RUN_PARTIALLY_SUCCEEDED,
    RunState.FAILED: EventType.RUN_FAILED,
    RunState.CANCELLED: EventType.RUN_CANCELLED,
}


class RunJournal:
    __slots__ = ("_clock", "_recorder", "observer", "run", "steps")

    def __init__(
        self,
        run: RunRecord,
        steps: list[StepRecord],
        recorder: Recorder,
        clock: Clock,
        observer: RunObserver | None = None,
    ) -> None:
        self.run = run
        self.steps = {step.step_id: step for step in steps}
        self._recorder = recorder
        self._clock = clock
        # Told of each change after it is recorded; it observes, never decides.
        self.observer = observer

    def now(self) -> float:
        return self._clock.now()

    # -- the run ---------------------------------------------------------------------

    def created(self) -> None:
        """A new run (PENDING; the engine wrote its steps' rows)."""
        self.emit(EventType.RUN_CREATED)
        self.save_run()

    def started(self) -> None:
        self.run.state = RunState.RUNNING
        self.run.start_time = self._clock.now()
        if self.observer is not None:
            # Stored with the run: a resumed run's trace links to this one.
            self.run.trace_context = self.observer.run_started(self.run, resumed=False)
        self.emit(EventType.RUN_STARTED)
        self.save_run()

    def resumed(self) -> None:
        """A run read back from the store goes on after a restart."""
        if self.observer is not None:
            self.observer.run_started(self.run, resumed=True)

    def paused(self, reason: str, actor: str) -> None:
        self.run.state = RunState.PAUSED
        self.emit(EventType.RUN_PAUSED, message=reason, actor=actor)
        self.save_run()

    def unpaused(self, state: RunState, actor: str) -> None:
        """ResumeRun: back to `state` (RUNNING, or WAITING_APPROVAL)."""
        self.run.state = state
        self.emit(EventType.RUN_RESUMED, actor=actor)
        self.save_run()

    def set_run_state(self, state: RunState) -> None:
        # A paused run stays PAUSED until ResumeRun (which works out its state anew).
        if self.run.state == RunState.PAUSED:
            return
        if self.run.state != state and not self.run.state.is_final:
            self.run.state = state
            self.save_run()

    def finished(
        self, state: RunState, failure: Failure | None, output: dict[str, Any] | None
    ) -> None:
        run = self.run
        run.state = state
        run.failure = failure
        run.output = output
        run.end_time = self._clock.now()
        self.emit(
            FINAL_EVENT[state],
            failure=failure,
            output=output,
            usage=run.usage.copy(),
            cost=run.cost,
        )
        self.save_run()
        if self.observer is not None:
            self.observer.run_finished(run)

    def abandon_pending(self, state: StepState, reason: str, running: Collection[str]) -> None:
        """Ends every PENDING step that has not started (SKIPPED or CANCELLED)."""
        now = self._clock.now()
        event = EventType.STEP_SKIPPED if state == StepState.SKIPPED else EventType.STEP_CANCELLED
        for step in self.steps.values():
            if step.state != StepState.PENDING or step.step_id in running:
                continue
            step.state = state
            step.reason = reason
            step.end_time = now
            self.save_step(step)
            self.emit(event, step=step, message=reason)
            if self.observer is not None:
                self.observer.step_ended(self.run, step)

    # -- steps -------------------------------------------------------------------------

    def step_succeeded(self, step: StepRecord, output: Any) -> None:
        step.state = StepState.SUCCEEDED
        step.output = output
        step.end_time = self._clock.now()
        step.due_time = None
        step.reason = ""
        self.save_step(step)
        self.emit(
            EventType.STEP_SUCCEEDED,
            step=step,
            attempt=_plain_attempts(step),
            output=output,
            usage=step.usage.copy(),
            cost=step.cost,
        )
        if self.observer is not None:
            self.observer.step_ended(self.run, step)

    def step_failed(self, step: StepRecord, failure: Failure) -> None:
        step.state = StepState.FAILED
        step.failure = failure
        step.end_time = self._clock.now()
        step.due_time = None
        step.reason = failure.message
        self.save_step(step)
        self.emit(
            EventType.STEP_FAILED,
            step=step,
            attempt=_plain_attempts(step),
            failure=failure,
            message=failure.message,
            usage=step.usage.copy(),
            cost=step.cost,
        )
        if self.observer is not None:
            self.observer.step_ended(self.run, step)

    def step_skipped(self, step: StepRecord, reason: str) -> None:
        step.state = StepState.SKIPPED
        step.reason = reason
        step.end_time = self._clock.now()
        self.save_step(step)
        self.emit(EventType.STEP_SKIPPED, step=step, message=reason)
        if self.observer is not None:
            self.observer.step_ended(self.run, step)

    def step_cancelled(self, step: StepRecord, reason: str) -> None:
        step.state = StepState.CANCELLED
        step.reason = reason
        step.end_time = self._clock.now()
        step.due_time = None
        self.save_step(step)
        self.emit(EventType.STEP_CANCELLED, step=step, message=reason)
        if self.observer is not None:
            self.observer.step_ended(self.run, step)

    def step_waiting(self, step: StepRecord, due: float | None, reason: str) -> None:
        step.state = StepState.WAITING
        step.due_time = due
        step.reason = reason
        self.save_step(step)
        self.emit(EventType.STEP_WAITING, step=step, due_time=due, message=reason)

    def step_resumed(self, step: StepRecord, reason: str) -> None:
        """A step that waited inside an attempt (quota, breaker) runs again."""
        step.state = StepState.RUNNING
        step.reason = ""
        self.save_step(step)
        self.emit(EventType.STEP_PROGRESS, step=step, message=f"resumed after {reason}")

    def cache_hit(self, step: StepRecord, output: Any) -> None:
        self.emit(EventType.STEP_CACHE_HIT, step=step, output=output, message="result from cache")

    # -- attempts, retries and items -----------------------------------------------------

    def attempt_started(
        self, step: StepRecord, attempt: AttemptRecord, queued: float = 0.0
    ) -> None:
        """`queued`: the seconds the attempt waited for a slot (for telemetry)."""
        step.attempts.append(attempt)
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
        self.save_step(step, attempt)
        self.emit(event, step=step, attempt=attempt.number, item=attempt.item)
        if self.observer is not None:
            self.observer.attempt_started(self.run, step, attempt, queued)

    def attempt_ended(
        self,
        step: StepRecord,
        attempt: AttemptRecord,
        state: AttemptState,
        failure: Failure | None,
    ) -> None:
        attempt.state = state
        attempt.end_time = self._clock.now()
        attempt.failure = failure
        self._recorder.attempt(self.run.run_id, step.step_id, attempt)
        if self.observer is not None:
            self.observer.attempt_ended(self.run, step, attempt)

    def interrupted(
        self, step: StepRecord, keep: Callable[[str, AttemptRecord], bool] | None = None
    ) -> None:
        """Resuming after a restart: an attempt that was in flight is recorded
        as interrupted (the step runner then decides whether it runs again),
        unless `keep` says it still runs (a relayed attempt, adopted)."""
        now = self._clock.now()
        for attempt in step.attempts:
            if attempt.state == AttemptState.RUNNING:
                if keep is not None and keep(step.step_id, attempt):
                    continue
                attempt.state = AttemptState.INTERRUPTED
                attempt.end_time = now
                attempt.failure = Failure(
                    INTERRUPTED, "the server stopped during this attempt", True
                )
                self._recorder.attempt(self.run.run_id, step.step_id, attempt)
                self.emit(
                    EventType.STEP_FAILED,
                    step=step,
                    attempt=attempt.number,
                    item=attempt.item,
                    failure=attempt.failure,
                    message="interrupted by a server restart",
                )

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
            self.save_step(step)
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
        if self.observer is not None:
            self.observer.retrying(self.run, step, attempt, failure, delay)

    def item_finished(self, step: StepRecord, record: ItemRecord) -> None:
        self._recorder.item(self.run.run_id, step.step_id, record)
        self.save_step(step)
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

    # -- approvals -------------------------------------------------------------------------

    def approval_requested(self, step: StepRecord, prompt: str, due: float | None) -> None:
        step.state = StepState.WAITING
        step.due_time = due
        step.reason = "waiting for approval"
        self.save_step(step)
        self.set_run_state(RunState.WAITING_APPROVAL)
        self.emit(EventType.APPROVAL_REQUESTED, step=step, message=prompt, due_time=due)

    def approval_resolved(
        self, step: StepRecord, approve: bool, comment: str, actor: str = ""
    ) -> None:
        self.emit(
            EventType.APPROVAL_RESOLVED,
            step=step,
            message=comment,
            decision=1 if approve else 2,
            actor=actor,
        )

    # -- what agents cause through their context --------------------------------------------

    def llm_call(
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
        # With its event, in one transaction: Run.cost is always the sum of
        # the run's LLM_CALL costs, crash or not.
        self.save_run()
        self.save_step(step, attempt)
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

    def open_call_charged(
        self,
        step_id: str,
        attempt_number: int,
        item: int,
        cost: Decimal,
        provider: str,
        model: str,
        price_version: str,
    ) -> None:
        """A call in flight when the server stopped is charged its reservation
        (the worst case: the provider may have billed it), to its attempt."""
        message = "the server stopped during this call: charged its reservation (worst case)"
        step = self.steps.get(step_id)
        attempt = None
        if step is not None:
            attempt = next(
                (a for a in step.attempts if a.number == attempt_number and a.item == item),
                None,
            )
        if step is not None and attempt is not None:
            self.llm_call(
                step, attempt, Usage(calls=1), cost, provider, model, price_version, message
            )
            return
        # No attempt to charge (not expected: an attempt is durable before its agent runs).
        self.run.usage.add(Usage(calls=1))
        self.run.cost += cost
        self.save_run()
        self.emit(
            EventType.LLM_CALL,
            usage=Usage(calls=1),
            cost=cost,
            provider=provider,
            model=model,
            price_version=price_version,
            message=message,
        )

    def progress(
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

    # -- recording ---------------------------------------------------------------------------

    def save_run(self) -> None:
        self._recorder.run(self.run)

    def save_step(self, step: StepRecord, attempt: AttemptRecord | None = None) -> None:
        recorder = self._recorder
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
            time=self._clock.now(),
            type=type,
            workflow_id=run.workflow_id,
            run_state=run.state,
            tenant=run.tenant,
            step_id=step.step_id if step is not None else "",
            step_state=step.state if step is not None else None,
            **fields,
        )
        self._recorder.event(event)


def _plain_attempts(step: StepRecord) -> int:
    """The attempt number for a step's final event: its attempts when it ran
    its agent once per attempt; 0 for fan-outs and loops (items have their own)."""
    if step.items_total or step.iterations:
        return 0
    return len(step.attempts)
