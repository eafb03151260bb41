"""The `workflow` step kind: starts a child run of another workflow and waits
for it; its output is the child's output.

- The child's run id is derived from the parent's run, step and attempt, so a
  parent resumed after a restart finds the child it started (or starts it, if
  the crash came first) and waits again; a child that ended meanwhile is read
  back. Each child is an attempt of the step (its cost is the child's).
- The child's failure fails the attempt with the child's failure type and a
  message naming the child run; the step's retry policy then decides, and
  each retry starts a new child (its id derived from the attempt number too).
  Cancelling the parent cancels the child.
- Budget: a parent with a max_cost sets aside what is left of it as the
  child's ceiling (held in the parent's run budget while the child runs, so
  that the parent's other steps cannot spend it too); when the child ends,
  its cost becomes the step's and the parent's, and the hold is dropped. A
  step that finds no room waits while some may come back; one that never
  can fit fails with podium.BudgetExceeded (podium.engine.child_budget).
- Timeouts: the step's `timeout` (over all its attempts) and
  `attempt_timeout` (one child) bound the wait; past either the child is
  cancelled and the attempt fails with podium.Timeout (an attempt timeout
  is retried per the policy, a step timeout never is).
- Depth: a child nests one deeper than its parent; past the limit
  max_workflow_depth (podium.core.limits) the step fails with
  podium.LimitExceeded, naming the limit.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Protocol

from podium.core import limits
from podium.core.clock import DeadlineExceeded, run_until
from podium.core.errors import InvalidArgument, NotFound
from podium.core.failures import CANCELLED, INVALID_INPUT, TIMEOUT, Failure
from podium.core.limits import LIMIT_EXCEEDED
from podium.core.model import AttemptRecord, RunRecord, StepRecord
from podium.core.spec import StepSpec
from podium.core.states import AttemptState, RunState, StepState
from podium.engine.environment import RunEnvironment
from podium.engine.ports import ChildRuns
from podium.engine.run_journal import RunJournal
from podium.engine.step_values import StepFailed
from podium.engine.validation import StepPlan

NOT_FOUND = "podium.WorkflowNotFound"
_CHILD_IDS = uuid.UUID("5b0e3f8e-7a1c-4d2b-9a57-0c1d2e3f4a5b")
ZERO = Decimal(0)


# (the failed attempt, attempts made, resumed after a restart) -> waits or raises StepFailed
Retry = Callable[[AttemptRecord, int, bool], Awaitable[None]]


class StepRunner(Protocol):
    @property
    def step(self) -> StepRecord: ...
    @property
    def spec(self) -> StepSpec: ...
    @property
    def plan(self) -> StepPlan: ...
    @property
    def env(self) -> RunEnvironment: ...
    @property
    def journal(self) -> RunJournal: ...

    # The step's deadline (start + its timeout), None without one.
    deadline: float | None


def child_run_id(parent_run_id: str, step_id: str, attempt: int = 1) -> str:
    """The child run of a parent's step's attempt: the same across restarts
    (the first attempt's id names no attempt: runs started before retries
    were honoured keep theirs)."""
    key = f"{parent_run_id}/{step_id}" if attempt == 1 else f"{parent_run_id}/{step_id}/{attempt}"
    return uuid.uuid5(_CHILD_IDS, key).hex


async def run_child(
    runner: StepRunner,
    children: ChildRuns,
    inputs: Callable[[], dict[str, Any]],
    retry: Retry,
) -> Any:
    """`inputs` evaluates the child's input (the step's `workflow.input`);
    `retry(attempt, made, resumed)` waits for the next attempt per the step's
    retry policy, or raises StepFailed."""
    step = runner.step
    attempts = [a for a in step.attempts if a.item == -1]
    attempt = attempts[-1] if attempts else None
    if attempt is not None and attempt.state == AttemptState.SUCCEEDED:
        # The child succeeded just before a restart: its output is read back.
        return await _attempt(runner, children, inputs, attempt)
    if attempt is not None and attempt.state != AttemptState.RUNNING:
        # Resumed after a child failed: decide about it again (a retry's due
        # time is kept).
        await retry(attempt, attempt.number, True)
        attempt = None
    while True:
        try:
            return await _attempt(runner, children, inputs, attempt)
        except _ChildFailed as failed:
            await retry(failed.attempt, failed.attempt.number, False)
            attempt = None


class _ChildFailed(Exception):
    def __init__(self, attempt: AttemptRecord) -> None:
        self.attempt = attempt


async def _attempt(
    runner: StepRunner,
    children: ChildRuns,
    inputs: Callable[[], dict[str, Any]],
    attempt: AttemptRecord | None,
) -> Any:
    """One child run (a new one, or the one `attempt` started): its output,
    or _ChildFailed once its failure is recorded on the attempt."""
    spec = runner.spec.workflow
    assert spec is not None
    step, journal = runner.step, runner.journal
    parent = journal.run
    number = attempt.number if attempt is not None else len(step.attempts) + 1
    run_id = child_run_id(parent.run_id, step.step_id, number)
    child = await children.find(run_id)
    if child is None:
        max_depth = limits.current().max_workflow_depth
        if parent.depth + 1 > max_depth:
            message = (
                f"child workflow {spec.name!r} would nest {parent.depth + 1} deep, past the "
                f"limit max_workflow_depth ({max_depth})"
            )
            raise StepFailed(Failure(LIMIT_EXCEEDED, message, retryable=False))
        step.input = inputs()
        holds = runner.env.child_holds
        room = await holds.room(
            runner.env, step, lambda: children.running_children(parent.run_id, parent.tenant)
        )
        # Held from now on, before the next await: a sibling step that looks
        # for room meanwhile must not be handed the same.
        holds.hold(runner.env, run_id, room)
        try:
            child = await children.start(run_id, parent, step.step_id, spec, step.input, room)
        except BaseException as error:
            holds.release(runner.env, run_id)
            if not isinstance(error, (NotFound, InvalidArgument)):
                raise
            # Deleted since the parent was defined, or the input does not fit.
            type = INVALID_INPUT if isinstance(error, InvalidArgument) else NOT_FOUND
            message = f"child workflow {spec.name!r} could not start: {error.message}"
            raise StepFailed(Failure(type, message, retryable=False)) from None
    elif not child.state.is_final:
        # Resumed with its child running: held again (once, whoever asks first).
        await runner.env.child_holds.hold_running(
            runner.env, lambda: children.running_children(parent.run_id, parent.tenant)
        )
        runner.env.child_holds.hold(runner.env, run_id, child.max_cost)
    if attempt is None:
        attempt = AttemptRecord(number, AttemptState.RUNNING, runner.env.services.clock.now())
        journal.attempt_started(step, attempt)
    if not child.state.is_final and step.state != StepState.WAITING:
        journal.step_waiting(step, None, f"waiting for child run runs/{run_id}")
    try:
        child = await run_until(
            children.wait(run_id), _wait_due(runner, attempt), runner.env.services.clock
        )
    except asyncio.CancelledError:
        if not runner.env.stop.stopping:
            children.cancel(run_id, f"parent run {parent.run_id} cancelled")
        raise
    except DeadlineExceeded:
        message = _timeout_message(runner, run_id)
        children.cancel(run_id, message)
        # Its cost so far is the attempt's: wait for the cancel to end it.
        child = await children.wait(run_id)
        _roll_up(runner.env, step, attempt, child)
        if child.state not in (RunState.SUCCEEDED, RunState.PARTIALLY_SUCCEEDED):
            _timed_out(runner, attempt, message)
    _roll_up(runner.env, step, attempt, child)
    if child.state in (RunState.SUCCEEDED, RunState.PARTIALLY_SUCCEEDED):
        if attempt.state != AttemptState.SUCCEEDED:
            journal.attempt_ended(step, attempt, AttemptState.SUCCEEDED, None)
        return child.output
    failure = child.failure or Failure(CANCELLED, "cancelled")
    message = f"child run runs/{run_id} {child.state.name.lower()}: {failure.message}"
    # A new child is a new run of the whole workflow: the step's retry policy
    # decides (failures no retry can fix, a cancel among them, never are).
    failure = Failure(failure.type, message, retryable=child.state == RunState.FAILED)
    journal.attempt_ended(step, attempt, AttemptState.FAILED, failure)
    raise _ChildFailed(attempt)


def _wait_due(runner: StepRunner, attempt: AttemptRecord) -> float | None:
    """Until when the child may run: the earlier of the step's deadline
    and the attempt's (counted from the attempt's start, so a resumed wait
    keeps its due time)."""
    dues = [] if runner.deadline is None else [runner.deadline]
    if runner.spec.attempt_timeout is not None:
        dues.append(attempt.start_time + runner.spec.attempt_timeout)
    return min(dues) if dues else None


def _step_over(runner: StepRunner) -> bool:
    return runner.deadline is not None and runner.env.services.clock.now() >= runner.deadline


def _timeout_message(runner: StepRunner, run_id: str) -> str:
    if _step_over(runner):
        return f"step timed out after {runner.spec.timeout:g}s waiting for runs/{run_id}"
    return f"attempt timed out after {runner.spec.attempt_timeout:g}s waiting for runs/{run_id}"


def _timed_out(runner: StepRunner, attempt: AttemptRecord, message: str) -> None:
    """Past a deadline, with the child cancelled: the attempt fails; the
    step's own deadline ends the step, an attempt's leaves it to the retry
    policy."""
    step_over = _step_over(runner)
    failure = Failure(TIMEOUT, message, retryable=not step_over)
    runner.journal.attempt_ended(runner.step, attempt, AttemptState.FAILED, failure)
    if step_over:
        raise StepFailed(failure)
    raise _ChildFailed(attempt)


def _roll_up(
    env: RunEnvironment, step: StepRecord, attempt: AttemptRecord, child: RunRecord
) -> None:
    """The child's cost becomes its attempt's, and the attempts' the step's
    and the parent's (assigned, not added: a step resumed after a restart may
    roll up twice); the child's ceiling is given back."""
    journal = env.journal
    parent = journal.run
    attempt.cost = child.cost
    total = sum((a.cost for a in step.attempts), ZERO)
    delta = total - step.cost
    env.child_holds.release(env, child.run_id, delta)
    step.cost = total
    parent.cost += delta
    if delta:
        journal.save_run()
        journal.save_step(step, attempt)
