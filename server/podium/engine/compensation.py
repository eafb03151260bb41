"""Saga rollback: one compensation of a succeeded step, recorded and streamed.

A failed compensation is reported and never stops the others: the executor
runs them all, in reverse order of completion.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from podium.core.failures import failure_from_exception
from podium.core.jsonvalues import from_json_numbers, jsonable
from podium.core.model import AttemptRecord, StepRecord
from podium.core.states import AttemptState, EventType
from podium.engine.agent_guard import guarded
from podium.engine.context import AttemptContext
from podium.engine.environment import RunEnvironment
from podium.engine.validation import StepPlan
from podium.engine.workers import DEFAULT_HEARTBEAT_TIMEOUT, DEFAULT_QUEUE, RemoteTask


async def run_compensation(env: RunEnvironment, plan: StepPlan, step: StepRecord) -> None:
    compensation = plan.spec.compensate
    assert compensation is not None
    journal = env.journal
    journal.emit(EventType.COMPENSATION_STARTED, step=step, message=compensation.agent)
    agent = env.services.registry.agent(compensation.agent)
    workers = env.services.workers
    queue = plan.spec.task_queue or DEFAULT_QUEUE
    tenant = journal.run.tenant
    remote = workers is not None and (
        bool(plan.spec.task_queue)
        or agent is None
        or workers.serves(queue, compensation.agent, tenant)
    )
    try:
        if agent is None and not remote:
            raise LookupError(f"agent {compensation.agent!r} is not registered")
        scope = {"input": from_json_numbers(step.input), "output": from_json_numbers(step.output)}
        inputs = {key: e.evaluate(scope) for key, e in plan.compensation_inputs.items()}
        # Not stored as an attempt of the step: its usage and cost still count.
        attempt = AttemptRecord(0, AttemptState.RUNNING, env.services.clock.now())
        context = AttemptContext(
            env.services, journal, plan.spec, step, attempt, inputs, compensation.config
        )
        if remote:
            assert workers is not None
            if not workers.serves(queue, compensation.agent, tenant):
                # Unlike a step, a compensation does not wait for a worker to connect.
                raise LookupError(
                    f"no worker serves agent {compensation.agent!r} on queue {queue!r}"
                )
            reservation = await workers.reserve(queue, compensation.agent, tenant)
            try:
                output = await workers.execute(
                    reservation, context, _task(env, plan, step, queue, inputs, context)
                )
            finally:
                workers.release(reservation)
        else:
            assert agent is not None
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


def _task(
    env: RunEnvironment,
    plan: StepPlan,
    step: StepRecord,
    queue: str,
    inputs: Any,
    context: AttemptContext,
) -> Callable[[str], RemoteTask]:
    compensation = plan.spec.compensate
    assert compensation is not None
    run = env.journal.run

    def task(token: str) -> RemoteTask:
        return RemoteTask(
            token=token,
            run_id=run.run_id,
            workflow_id=run.workflow_id,
            step_id=step.step_id,
            item=-1,
            attempt=0,  # as in-process: a compensation is no attempt of the step
            agent=compensation.agent,
            queue=queue,
            input=inputs,
            config=compensation.config,
            attempt_deadline=None,
            step_deadline=None,
            heartbeat_timeout=plan.spec.heartbeat_timeout or DEFAULT_HEARTBEAT_TIMEOUT,
            traceparent="",
            tools=context.tools,
        )

    return task
