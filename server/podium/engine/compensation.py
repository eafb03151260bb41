"""Saga rollback: one compensation of a succeeded step, recorded and streamed.

A failed compensation is reported and never stops the others: the executor
runs them all, in reverse order of completion.
"""

from __future__ import annotations

import asyncio

from podium.core.failures import failure_from_exception
from podium.core.jsonvalues import from_json_numbers, jsonable
from podium.core.model import AttemptRecord, StepRecord
from podium.core.states import AttemptState, EventType
from podium.engine.agent_guard import guarded
from podium.engine.context import AttemptContext
from podium.engine.environment import RunEnvironment
from podium.engine.validation import StepPlan


async def run_compensation(env: RunEnvironment, plan: StepPlan, step: StepRecord) -> None:
    compensation = plan.spec.compensate
    assert compensation is not None
    journal = env.journal
    journal.emit(EventType.COMPENSATION_STARTED, step=step, message=compensation.agent)
    agent = env.services.registry.agent(compensation.agent)
    try:
        if agent is None:
            raise LookupError(f"agent {compensation.agent!r} is not registered")
        scope = {"input": from_json_numbers(step.input), "output": from_json_numbers(step.output)}
        inputs = {key: e.evaluate(scope) for key, e in plan.compensation_inputs.items()}
        # Not stored as an attempt of the step: its usage and cost still count.
        attempt = AttemptRecord(0, AttemptState.RUNNING, env.services.clock.now())
        context = AttemptContext(
            env.services, journal, plan.spec, step, attempt, inputs, compensation.config
        )
        output = await guarded(agent.run(context))
    except asyncio.CancelledError:
        if env.stop.stopping:
            raise
        journal.emit(EventType.COMPENSATION_FAILED, step=step, message="cancelled")
    except Exception as error:
        failure = failure_from_exception(error)
        journal.emit(
            EventType.COMPENSATION_FAILED, step=step, failure=failure, message=failure.message
        )
    else:
        journal.emit(EventType.COMPENSATION_SUCCEEDED, step=step, output=jsonable(output))
