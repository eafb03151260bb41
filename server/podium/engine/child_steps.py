"""The `workflow` step kind: starts a child run of another workflow and waits
for it; its output is the child's output.

- The child's run id is derived from the parent's run and step, so a parent
  resumed after a restart finds the child it started (or starts it, if the
  crash came first) and waits again; a child that ended meanwhile is read back.
- The child's failure fails the step with the child's failure type and a
  message naming the child run; cancelling the parent cancels the child.
- Budget: a parent with a max_cost sets aside what is left of it as the
  child's ceiling (held in the parent's run budget while the child runs, so
  that the parent's other steps cannot spend it too); when the child ends,
  its cost becomes the step's and the parent's, and the hold is dropped.
- Depth: a child nests one deeper than its parent; past the limit
  max_workflow_depth (podium.core.limits) the step fails with
  podium.LimitExceeded, naming the limit.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

from podium.core import limits
from podium.core.errors import InvalidArgument, NotFound
from podium.core.failures import CANCELLED, INVALID_INPUT, Failure
from podium.core.limits import LIMIT_EXCEEDED
from podium.core.model import RunRecord, StepRecord
from podium.core.spec import StepSpec
from podium.core.states import RunState, StepState
from podium.engine.environment import RunEnvironment
from podium.engine.ports import ChildRuns
from podium.engine.run_journal import RunJournal
from podium.engine.step_values import StepFailed
from podium.engine.validation import StepPlan
from podium.governance.budgets import run_budget_name

NOT_FOUND = "podium.WorkflowNotFound"
_CHILD_IDS = uuid.UUID("5b0e3f8e-7a1c-4d2b-9a57-0c1d2e3f4a5b")
ZERO = Decimal(0)


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


def child_run_id(parent_run_id: str, step_id: str) -> str:
    """The child run of a parent's step: the same across restarts."""
    return uuid.uuid5(_CHILD_IDS, f"{parent_run_id}/{step_id}").hex


async def run_child(
    runner: StepRunner, children: ChildRuns, inputs: Callable[[], dict[str, Any]]
) -> Any:
    """`inputs` evaluates the child's input (the step's `workflow.input`)."""
    spec = runner.spec.workflow
    assert spec is not None
    step, journal = runner.step, runner.journal
    parent = journal.run
    run_id = child_run_id(parent.run_id, step.step_id)
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
        try:
            child = await children.start(
                run_id, parent, step.step_id, spec, step.input, _room(runner.env, parent)
            )
        except (NotFound, InvalidArgument) as error:
            # Deleted since the parent was defined, or the input does not fit.
            type = INVALID_INPUT if isinstance(error, InvalidArgument) else NOT_FOUND
            message = f"child workflow {spec.name!r} could not start: {error.message}"
            raise StepFailed(Failure(type, message, retryable=False)) from None
    hold = _hold(runner.env, parent, child)
    if not child.state.is_final and step.state != StepState.WAITING:
        journal.step_waiting(step, None, f"waiting for child run runs/{run_id}")
    try:
        child = await children.wait(run_id)
    except asyncio.CancelledError:
        if not runner.env.stop.stopping:
            children.cancel(run_id, f"parent run {parent.run_id} cancelled")
        raise
    _roll_up(runner.env, step, child, hold)
    if child.state in (RunState.SUCCEEDED, RunState.PARTIALLY_SUCCEEDED):
        return child.output
    failure = child.failure or Failure(CANCELLED, "cancelled")
    message = f"child run runs/{run_id} {child.state.name.lower()}: {failure.message}"
    raise StepFailed(Failure(failure.type, message, retryable=False))


def _room(env: RunEnvironment, parent: RunRecord) -> Decimal | None:
    """What is left of the parent's ceiling: the child's ceiling."""
    if parent.max_cost is None:
        return None
    ledger = env.services.governance.ledger
    name = run_budget_name(parent.run_id)
    spent = max(ledger.spent(name, ""), parent.cost)
    return max(ZERO, parent.max_cost - spent - ledger.reserved(name, ""))


def _hold(env: RunEnvironment, parent: RunRecord, child: RunRecord) -> Decimal:
    """Sets the child's ceiling aside in the parent's run budget (as spend, so
    that no call of the parent's may use it) until the child ends."""
    if parent.max_cost is None or child.max_cost is None or child.state.is_final:
        return ZERO
    ledger = env.services.governance.ledger
    key = (run_budget_name(parent.run_id), "")
    ledger.load({key: max(ledger.spent(key[0], ""), parent.cost) + child.max_cost})
    return child.max_cost


def _roll_up(env: RunEnvironment, step: StepRecord, child: RunRecord, hold: Decimal) -> None:
    """The child's cost becomes the step's and the parent's (assigned, not
    added: a step resumed after a restart may roll up twice)."""
    journal = env.journal
    parent = journal.run
    delta = child.cost - step.cost
    step.cost = child.cost
    parent.cost += delta
    if parent.max_cost is not None:
        ledger = env.services.governance.ledger
        key = (run_budget_name(parent.run_id), "")
        ledger.load({key: max(ZERO, ledger.spent(key[0], "") - hold) + delta})
    if delta:
        journal.save_run()
        journal.save_step(step)
