"""Saga rollback: one compensation of a succeeded step, recorded and streamed.

A failed compensation is reported and never stops the others: the executor
runs them all, in reverse order of completion.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from podium.engine.context import AttemptContext
from podium.engine.expressions import from_json_numbers
from podium.engine.failures import failure_from_exception
from podium.engine.model import AttemptRecord, StepRecord
from podium.engine.states import AttemptState, EventType

if TYPE_CHECKING:
    from podium.engine.executor import RunExecutor


async def run_compensation(ex: RunExecutor, step: StepRecord) -> None:
    plan = ex.plan.steps[step.step_id]
    compensation = plan.spec.compensate
    assert compensation is not None
    ex.emit(EventType.COMPENSATION_STARTED, step=step, message=compensation.agent)
    agent = ex.engine.registry.agent(compensation.agent)
    try:
        if agent is None:
            raise LookupError(f"agent {compensation.agent!r} is not registered")
        scope = {"input": from_json_numbers(step.input), "output": from_json_numbers(step.output)}
        inputs = {key: e.evaluate(scope) for key, e in plan.compensation_inputs.items()}
        # Not stored as an attempt of the step: its usage and cost still count.
        attempt = AttemptRecord(0, AttemptState.RUNNING, ex.engine.clock.now())
        context = AttemptContext(ex, step, attempt, inputs, compensation.config)
        output = await agent.run(context)
    except asyncio.CancelledError:
        if ex.stopping:
            raise
        ex.emit(EventType.COMPENSATION_FAILED, step=step, message="cancelled")
    except Exception as error:
        failure = failure_from_exception(error)
        ex.emit(EventType.COMPENSATION_FAILED, step=step, failure=failure, message=failure.message)
    else:
        ex.emit(EventType.COMPENSATION_SUCCEEDED, step=step, output=_jsonable(output))


def _jsonable(value: Any) -> Any:
    """A compensation's output for its event; never fails the compensation."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        return repr(value)
