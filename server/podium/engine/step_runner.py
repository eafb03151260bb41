"""One step's whole life after it became ready: its condition, then a wait,
an approval, a fan-out, a loop or a plain agent call, each agent call with
its retries and timeouts. Reports the outcome to the run's executor through a callback.

Durable state (due times, finished items, attempts) is written through the
run's journal as it changes, so that a restarted server resumes the step where it
was: a wait or a retry keeps its due time, finished items are not run again,
and an attempt that was in flight counts as an interrupted attempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from podium.core import limits
from podium.core.clock import DeadlineExceeded, run_until, sleep_until
from podium.core.expressions import ExpressionError
from podium.core.failures import (
    INTERNAL,
    INTERRUPTED,
    INVALID_INPUT,
    REJECTED,
    TIMEOUT,
    TOO_MANY_FAILED_ITEMS,
    UNKNOWN_AGENT,
    AgentAborted,
    Failure,
    ProviderError,
    failure_from_exception,
)
from podium.core.jsonvalues import OFF_LOOP_BYTES, exceeds_json_size, from_json_numbers
from podium.core.limits import LIMIT_EXCEEDED
from podium.core.model import AttemptRecord, ItemRecord, StepRecord
from podium.core.states import AttemptState, StepState
from podium.core.templates import Template
from podium.engine import child_steps, signal_steps
from podium.engine.agent_guard import guarded
from podium.engine.context import AttemptContext
from podium.engine.environment import RunEnvironment
from podium.engine.keyed import ItemQueue, KeyedItemQueue
from podium.engine.relay import remote_task_payload
from podium.engine.relay_store import RelayTask
from podium.engine.retry import next_delay
from podium.engine.step_values import (
    StepFailed,
    cache_key,
    check_agent_input,
    check_instant,
    check_output_schemas,
    instant,
    iso,
    json_output,
    oversized_output,
    truthy,
)
from podium.engine.validation import StepPlan
from podium.engine.workers import (
    DEFAULT_HEARTBEAT_TIMEOUT,
    DEFAULT_QUEUE,
    AttemptInterrupted,
    RemoteTask,
    Reservation,
)
from podium.plugins.api import AgentError

# A step without a retry policy still runs again after a server restart
# (at-least-once), but not forever: a step that kills the server every time
# must end.
MAX_INTERRUPTIONS = 5
_jitter = random.Random()


class _Relayed:
    """The slot `_reserve_worker` gives when the attempt goes to a worker connected
    to another server of the cluster (through the task relay)."""


RELAYED = _Relayed()

log = logging.getLogger("podium.engine")


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """How a step ended: SUCCEEDED with its output, FAILED with its failure,
    SKIPPED with the reason, or CANCELLED."""

    state: StepState
    output: Any = None
    failure: Failure | None = None
    reason: str = ""
    # from_json_numbers(output) (what expressions see of it), when made already:
    # off the event loop for a large output.
    scope_output: Any = None


async def _checked_output(output: Any) -> Any:
    """json_output(output), in a worker thread when the output is large (its
    copy and checks took over half a second of the event loop at 1 MiB)."""
    if exceeds_json_size(output, OFF_LOOP_BYTES):
        return await asyncio.to_thread(json_output, output)
    return json_output(output)


class StepRunner:
    def __init__(
        self,
        env: RunEnvironment,
        step: StepRecord,
        plan: StepPlan,
        scope: dict[str, Any],
        *,
        resumed: bool,
        on_outcome: Callable[[StepRecord, StepOutcome], None],
    ) -> None:
        self.env = env
        self.journal = env.journal
        self.services = env.services
        self.step = step
        self.plan = plan
        self.spec = plan.spec
        self.scope = scope
        # Whether the step was in progress when the server last stopped.
        self.resumed = resumed
        self.on_outcome = on_outcome
        self.clock = env.services.clock
        self.deadline: float | None = None
        self._attempts_by_item: dict[int, list[AttemptRecord]] | None = None
        # Items of this step waiting for a worker's slot: the step shows one
        # wait while any does (not one per item of a large fan-out).
        self._waiting_for_worker = 0
        # What _off_loop decides once per step: whether the step's scope
        # holds a large value among the variables its inputs name.
        self._large_scope: bool | None = None

    async def run(self) -> None:
        step = self.step
        try:
            outcome = await self._outcome()
        except asyncio.CancelledError:
            if self.env.stop.stopping:
                raise
            outcome = StepOutcome(StepState.CANCELLED)
        except GeneratorExit:
            # This coroutine is being closed (an agent's own GeneratorExit
            # became AgentAborted in its attempt): it must not go on.
            raise
        # The safety net: whatever escapes the step's own code is a bug of
        # ours (agents' faults are caught per attempt); the step still ends in
        # one recorded final state, FAILED and never CANCELLED, so that the
        # run cannot end SUCCEEDED without it. BaseException too, since a
        # SystemExit escaping this task would stop the event loop.
        except BaseException as error:
            log.error(
                "step %r of run %s failed unexpectedly",
                step.step_id,
                self.journal.run.run_id,
                exc_info=error,
                extra={"run_id": self.journal.run.run_id, "step_id": step.step_id},
            )
            failure = Failure(INTERNAL, f"{type(error).__name__}: {error}", retryable=False)
            outcome = StepOutcome(StepState.FAILED, failure=failure)
        self.on_outcome(step, outcome)

    async def _outcome(self) -> StepOutcome:
        step = self.step
        try:
            scope = self.scope
            if self.plan.when is not None and not truthy(self._evaluate(self.plan.when, scope)):
                reason = f"condition is false: {self.spec.when}"
                return StepOutcome(StepState.SKIPPED, reason=reason)
            if step.start_time is None:
                step.start_time = self.clock.now()
            if self.spec.timeout is not None:
                self.deadline = step.start_time + self.spec.timeout
            if self.spec.wait is not None:
                output = await self._wait(scope)
            elif self.spec.approval is not None:
                output = await self._approval(scope)
            elif self.spec.wait_for_signal is not None:
                output = await signal_steps.wait_for_signal(self, scope)
            elif self.spec.callback is not None:
                output = await signal_steps.callback(self, scope)
            elif self.spec.workflow is not None:
                assert self.services.children is not None
                output = await child_steps.run_child(
                    self,
                    self.services.children,
                    lambda: self._inputs(scope),
                    lambda attempt, made, resumed: self._retry_or_fail(
                        attempt, -1, made, resumed=resumed
                    ),
                )
            elif self.spec.for_each is not None:
                output = await self._fan_out(scope)
            elif self.spec.loop is not None:
                output = await self._loop(scope)
            else:
                output = await self._cached_call(scope)
        except StepFailed as failed:
            return StepOutcome(StepState.FAILED, failure=failed.failure)
        scope_output = None
        if exceeds_json_size(output, OFF_LOOP_BYTES):
            scope_output = await asyncio.to_thread(from_json_numbers, output)
        return StepOutcome(StepState.SUCCEEDED, output=output, scope_output=scope_output)

    # -- kinds of steps ------------------------------------------------------------

    async def _wait(self, scope: dict[str, Any]) -> Any:
        wait = self.spec.wait
        assert wait is not None
        due = self.step.due_time
        if due is None:
            if wait.duration is not None:
                due = (self.step.start_time or self.clock.now()) + wait.duration
            elif wait.time is not None:
                due = wait.time
            else:
                assert self.plan.wait_time is not None
                due = instant(self._evaluate(self.plan.wait_time, scope))
            check_instant(due)
            self.journal.step_waiting(self.step, due, f"waiting until {iso(due)}")
        if self.deadline is not None and self.deadline < due:
            await sleep_until(self.clock, self.deadline)
            raise StepFailed(Failure(TIMEOUT, self._timeout_message(), retryable=False))
        await sleep_until(self.clock, due)
        return {"waited_until": iso(due)}

    async def _approval(self, scope: dict[str, Any]) -> Any:
        approval = self.spec.approval
        assert approval is not None
        resumed = self.step.state == StepState.WAITING
        due = self.step.due_time
        if not resumed:
            prompt = self._evaluate(self.plan.prompt, scope) if self.plan.prompt else ""
            if approval.timeout is not None:
                due = self.clock.now() + approval.timeout
            if self.deadline is not None:
                due = self.deadline if due is None else min(due, self.deadline)
            self.journal.approval_requested(self.step, prompt, due)
        decision = self.env.approvals.decision(self.step.step_id)
        try:
            if due is None:
                approve, comment = await decision
            else:
                approve, comment = await run_until(_await(decision), due, self.clock)
        except DeadlineExceeded:
            raise StepFailed(Failure(TIMEOUT, "no decision before the approval timeout")) from None
        finally:
            self.env.approvals.done(self.step.step_id)
        if not approve:
            raise StepFailed(Failure(REJECTED, comment or "rejected", retryable=False))
        return {"approved": True, "comment": comment}

    async def _fan_out(self, scope: dict[str, Any]) -> Any:
        fan_out = self.spec.for_each
        assert fan_out is not None and self.plan.items is not None
        if exceeds_json_size(scope.get("input"), OFF_LOOP_BYTES) or exceeds_json_size(
            scope.get("steps"), OFF_LOOP_BYTES
        ):
            # A list of thousands of items from a large value: converted and
            # checked in a worker thread (see OFF_LOOP_BYTES).
            items = await asyncio.to_thread(self._evaluate, self.plan.items, scope)
        else:
            items = self._evaluate(self.plan.items, scope)
        if not isinstance(items, list):
            raise StepFailed(
                Failure(INVALID_INPUT, f"for_each.items gave {type(items).__name__}, not a list")
            )
        max_items = limits.current().max_fan_out_items
        if len(items) > max_items:
            raise StepFailed(
                Failure(
                    LIMIT_EXCEEDED,
                    f"for_each.items gave {len(items)} items; at most {max_items} "
                    "are allowed (max_fan_out_items)",
                    retryable=False,
                )
            )
        step, total = self.step, len(items)
        step.items_total = total
        done = {record.index: record for record in await self._finished_items()}
        step.items_succeeded = sum(1 for r in done.values() if r.succeeded)
        step.items_failed = len(done) - step.items_succeeded
        tolerated = max(
            fan_out.tolerated_failure_count,
            int(fan_out.tolerated_failure_percent * total / 100),
        )
        pending = self._item_queue(items, [i for i in range(total) if i not in done], scope)
        too_many: list[Failure] = []

        async def worker() -> None:
            while (index := await pending.take()) is not None:
                if too_many:
                    return
                item_scope = {**scope, "item": from_json_numbers(items[index]), "index": index}
                try:
                    output = await self._call(item_scope, item=index)
                except StepFailed as failed:
                    pending.done(index)
                    record = ItemRecord(index, False, failure=failed.failure)
                    done[index] = record
                    step.items_failed += 1
                    self.journal.item_finished(step, record)
                    if step.items_failed > tolerated and not too_many:
                        too_many.append(
                            Failure(
                                TOO_MANY_FAILED_ITEMS,
                                f"{step.items_failed} of {total} items failed "
                                f"(tolerated: {tolerated}); last: {failed.failure.message}",
                                retryable=False,
                            )
                        )
                        # The step has failed: items still running or
                        # queued for quota are cancelled, not waited for.
                        current = asyncio.current_task()
                        for task in workers:
                            if task is not current:
                                task.cancel()
                        return
                    continue
                pending.done(index)
                record = ItemRecord(index, True, output=output)
                done[index] = record
                step.items_succeeded += 1
                self.journal.item_finished(step, record)
                # An agent that returns without suspending (echo, transform) would
                # otherwise let this worker run every item in one go, the loop
                # serving nothing else meanwhile.
                await asyncio.sleep(0)

        limit = fan_out.max_concurrency or self.env.slots.limit
        workers: list[asyncio.Task[None]] = []
        workers += [asyncio.create_task(worker()) for _ in range(min(limit, total - len(done)))]
        try:
            results = await asyncio.gather(*workers, return_exceptions=True)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        if too_many:
            raise StepFailed(too_many[0])
        for result in results:
            if isinstance(result, BaseException):
                raise result
        combined = [done[i].output if done[i].succeeded else None for i in range(total)]
        oversized = oversized_output(combined, "the combined output of its items")
        if oversized is not None:
            raise StepFailed(oversized)
        return combined

    async def _loop(self, scope: dict[str, Any]) -> Any:
        loop = self.spec.loop
        assert loop is not None and self.plan.until is not None
        step = self.step
        done = await self._finished_items()
        previous = done[-1].output if done else None
        for iteration in range(len(done), loop.max_iterations):
            iteration_scope = {**scope, "iteration": iteration, "previous": previous}
            output = await self._call(iteration_scope, item=iteration)
            step.iterations = iteration + 1
            self.journal.item_finished(step, ItemRecord(iteration, True, output=output))
            previous = output
            until_scope = {**scope, "iteration": iteration, "output": from_json_numbers(output)}
            if truthy(self._evaluate(self.plan.until, until_scope)):
                break
            await asyncio.sleep(0)  # as in a fan-out: let the loop serve others between iterations
        return previous

    async def _cached_call(self, scope: dict[str, Any]) -> Any:
        cache = self.spec.cache
        if cache is None:
            return await self._call(scope, item=-1)
        inputs = self._inputs(scope)
        agent = self.services.registry.agent(self.spec.agent)
        declared = (
            self.services.workers.declared(self.spec.agent) if self.services.workers else None
        )
        version = agent.version if agent else (declared.version if declared else "")
        key = cache_key(self.journal.run.tenant, self.spec.agent, version, inputs, self.spec.config)
        hit, output = await self.services.store.get_cache(key, self.clock.now())
        if hit:
            self.step.input = inputs
            self.journal.cache_hit(self.step, output)
            return output
        output = await self._call(scope, item=-1, inputs=inputs)
        self.services.store.put_cache(key, output, self.clock.now() + cache.ttl)
        return output

    # -- one agent call, with retries and timeouts -----------------------------------

    async def _call(self, scope: dict[str, Any], *, item: int, inputs: Any = None) -> Any:
        journal, step, spec = self.journal, self.step, self.spec
        if inputs is None:
            if self._off_loop(scope):
                inputs = await asyncio.to_thread(self._inputs, scope)
            else:
                inputs = self._inputs(scope)
        if item == -1:
            step.input = inputs
        agent = self.services.registry.agent(spec.agent)
        queue = self._queue(loaded=agent is not None)
        if agent is None and queue is None:
            raise StepFailed(Failure(UNKNOWN_AGENT, f"agent {spec.agent!r} is not registered"))
        previous = self._previous_attempts(item)
        if (
            previous
            and previous[-1].state == AttemptState.RUNNING
            and self.services.relay is not None
        ):
            # Taken over from another server while a worker ran it (relayed):
            # its outcome is awaited, not run again.
            adopted = await self._adopted(previous[-1], item, inputs)
            if adopted is not None:
                return adopted[0]
        elif previous and previous[-1].state != AttemptState.SUCCEEDED:
            # Resuming after a restart: decide about the last attempt again.
            await self._retry_or_fail(previous[-1], item, len(previous), resumed=True)
        made = len(previous)
        while True:
            self._check_deadline()
            queued_from = self.clock.now()
            async with self.env.slots.slot():
                # The deadline may have passed while queueing for the slot.
                self._check_deadline()
                reservation = None if queue is None else await self._reserve_worker(queue)
                made += 1
                now = self.clock.now()
                # Fixed at the attempt's start: the commit below takes time too.
                due = self._attempt_due(now)
                attempt = AttemptRecord(made, AttemptState.RUNNING, now, item=item)
                journal.attempt_started(step, attempt, now - queued_from)
                context = AttemptContext(
                    self.services, journal, spec, step, attempt, inputs, spec.config
                )
                ended = AttemptState.FAILED
                try:
                    # Durable before the agent runs (or its task is sent to a
                    # worker): every execution has its attempt row (concurrent
                    # starts share one group commit).
                    await self.services.store.commit()
                    if reservation is None:
                        assert agent is not None
                        check_agent_input(agent, inputs)
                        work = guarded(agent.run(context))
                    elif isinstance(reservation, _Relayed):
                        work = self._relay(queue or DEFAULT_QUEUE, context, attempt, inputs)
                    else:
                        work = self._delegate(reservation, context, attempt, inputs)
                    output = await _checked_output(await run_until(work, due, self.clock))
                    check_output_schemas(output, spec.output_schema, agent, reservation is None)
                except DeadlineExceeded:
                    failure = Failure(TIMEOUT, self._timeout_message(), retryable=True)
                except asyncio.CancelledError:
                    if not self.env.stop.stopping:
                        journal.attempt_ended(step, attempt, AttemptState.CANCELLED, None)
                    raise
                except AttemptInterrupted as interrupted:
                    failure, ended = interrupted.failure, AttemptState.INTERRUPTED
                except Exception as error:
                    failure = failure_from_exception(error)
                    self._log_unexpected(error, attempt)
                else:
                    journal.attempt_ended(step, attempt, AttemptState.SUCCEEDED, None)
                    return output
                finally:
                    # A slot whose task was never sent (the commit failed, the
                    # step was cancelled) goes back to its worker.
                    if isinstance(reservation, Reservation) and self.services.workers is not None:
                        self.services.workers.release(reservation)
            journal.attempt_ended(step, attempt, ended, failure)
            await self._retry_or_fail(attempt, item, made, resumed=False)

    # -- agents served by workers ------------------------------------------------------

    def _queue(self, *, loaded: bool) -> str | None:
        """The task queue whose workers run this step's agent, or None to run
        it in-process: a step naming a queue runs there; an agent no plugin
        loaded, or one a worker serves on the default queue, runs on workers."""
        workers = self.services.workers
        if workers is None:
            return None
        if self.spec.task_queue:
            return self.spec.task_queue
        if not loaded or workers.serves(DEFAULT_QUEUE, self.spec.agent, self.journal.run.tenant):
            return DEFAULT_QUEUE
        return None

    async def _reserve_worker(self, queue: str) -> Reservation | _Relayed:
        """A slot of a worker serving the step's agent on `queue`; while there
        is none the step waits visibly, until the step's deadline. In cluster
        mode, RELAYED when no worker connected here serves it but one connected
        to another live server does."""
        workers = self.services.workers
        assert workers is not None
        agent = self.spec.agent
        tenant = self.journal.run.tenant
        reservation = workers.try_reserve(queue, agent, tenant)
        if reservation is not None:
            return reservation
        relay = self.services.relay
        if (
            relay is not None
            and not workers.serves(queue, agent, tenant)
            and relay.offered(queue, agent, tenant)
        ):
            return RELAYED
        reason = f"worker:{queue}/{agent}"
        if self._waiting_for_worker == 0:
            self.journal.step_waiting(self.step, None, reason)
        self._waiting_for_worker += 1
        try:
            slot = await run_until(self._local_or_relayed(queue), self.deadline, self.clock)
        except DeadlineExceeded:
            message = (
                f"no worker served agent {agent!r} on queue {queue!r} before the step timed out"
            )
            raise StepFailed(Failure(TIMEOUT, message, retryable=False)) from None
        finally:
            self._waiting_for_worker -= 1
        if self._waiting_for_worker == 0:
            self.journal.step_resumed(self.step, reason)
        return slot

    async def _local_or_relayed(self, queue: str) -> Reservation | _Relayed:
        """The first of: a slot of a worker connected here, or (cluster mode, while
        no worker here serves the agent) a worker of it connecting to another server."""
        workers, relay = self.services.workers, self.services.relay
        assert workers is not None
        agent, tenant = self.spec.agent, self.journal.run.tenant
        if relay is None or workers.serves(queue, agent, tenant):
            return await workers.reserve(queue, agent, tenant)
        local = asyncio.ensure_future(workers.reserve(queue, agent, tenant))
        elsewhere = asyncio.ensure_future(relay.wait_offered(queue, agent, tenant))
        try:
            await asyncio.wait({local, elsewhere}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            elsewhere.cancel()
            if not local.done():
                local.cancel()
            # A slot granted while being cancelled is given back by reserve().
            await asyncio.gather(local, elsewhere, return_exceptions=True)
        if local.done() and not local.cancelled():
            return local.result()
        if workers.serves(queue, agent, tenant):
            # A worker connected here meanwhile: its slot it is.
            return await workers.reserve(queue, agent, tenant)
        return RELAYED

    async def _relay(
        self, queue: str, context: AttemptContext, attempt: AttemptRecord, inputs: Any
    ) -> Any:
        """Runs the attempt on a worker connected to another server (cluster mode)."""
        relay = self.services.relay
        assert relay is not None
        run = self.journal.run
        remote = self._remote_task("", queue, context, attempt, inputs)
        task = RelayTask(
            run_id=run.run_id,
            step_id=self.step.step_id,
            item=attempt.item,
            attempt=attempt.number,
            epoch=relay.epoch(run.run_id),
            queue=queue,
            agent=self.spec.agent,
            tenant=run.tenant,
            payload=remote_task_payload(remote),
        )
        return await relay.execute(task, context)

    async def _adopted(self, attempt: AttemptRecord, item: int, inputs: Any) -> tuple[Any] | None:
        """Awaits the outcome of a relayed attempt adopted with its run (taken over
        from the server that relayed it) and records it: (output,) when it
        succeeded, None after deciding about a retry (or raises StepFailed)."""
        relay, journal, step = self.services.relay, self.journal, self.step
        assert relay is not None
        ended = AttemptState.FAILED
        # The worker's governed calls from now on run on this server's context.
        context = AttemptContext(
            self.services, journal, self.spec, step, attempt, inputs, self.spec.config
        )
        try:
            output = await run_until(
                relay.resume(journal.run.run_id, step.step_id, attempt, context),
                self.deadline,
                self.clock,
            )
            output = await _checked_output(output)
            check_output_schemas(output, self.spec.output_schema, None, False)
        except DeadlineExceeded:
            failure = Failure(TIMEOUT, self._timeout_message(), retryable=True)
        except asyncio.CancelledError:
            if not self.env.stop.stopping:
                journal.attempt_ended(step, attempt, AttemptState.CANCELLED, None)
            raise
        except AttemptInterrupted as interrupted:
            failure, ended = interrupted.failure, AttemptState.INTERRUPTED
        except Exception as error:
            failure = failure_from_exception(error)
        else:
            journal.attempt_ended(step, attempt, AttemptState.SUCCEEDED, None)
            return (output,)
        journal.attempt_ended(step, attempt, ended, failure)
        await self._retry_or_fail(attempt, item, attempt.number, resumed=False)
        return None

    def _remote_task(
        self,
        token: str,
        queue: str,
        context: AttemptContext,
        attempt: AttemptRecord,
        inputs: Any,
    ) -> RemoteTask:
        run, spec = self.journal.run, self.spec
        observer = self.journal.observer
        # With tracing on, the worker's span of the attempt joins the run's trace.
        traceparent = (
            observer.attempt_traceparent(run, self.step, attempt) if observer is not None else ""
        ) or _traceparent(run.run_id, self.step.step_id, attempt)
        attempt_deadline = (
            None if spec.attempt_timeout is None else attempt.start_time + spec.attempt_timeout
        )
        return RemoteTask(
            token=token,
            run_id=run.run_id,
            workflow_id=run.workflow_id,
            step_id=self.step.step_id,
            item=attempt.item,
            attempt=attempt.number,
            agent=spec.agent,
            queue=queue,
            input=inputs,
            config=spec.config,
            attempt_deadline=attempt_deadline,
            step_deadline=self.deadline,
            heartbeat_timeout=spec.heartbeat_timeout or DEFAULT_HEARTBEAT_TIMEOUT,
            traceparent=traceparent,
            tools=context.tools,
        )

    async def _delegate(
        self, reservation: Reservation, context: AttemptContext, attempt: AttemptRecord, inputs: Any
    ) -> Any:
        workers = self.services.workers
        assert workers is not None

        def task(token: str) -> RemoteTask:
            return self._remote_task(token, reservation.queue, context, attempt, inputs)

        return await workers.execute(reservation, context, task)

    async def _retry_or_fail(
        self, attempt: AttemptRecord, item: int, made: int, *, resumed: bool
    ) -> None:
        """Waits for the next attempt, or raises StepFailed."""
        failure = attempt.failure or Failure(INTERRUPTED, "the server stopped", retryable=True)
        due: float | None = self.step.due_time if resumed and item == -1 else None
        if due is None:
            delay = next_delay(self.plan.retry, failure, made, _jitter.random)
            if delay is None and failure.type == INTERRUPTED:
                interruptions = sum(
                    1
                    for a in self.step.attempts
                    if a.item == item and a.state == AttemptState.INTERRUPTED
                )
                delay = 0.0 if interruptions <= MAX_INTERRUPTIONS else None
            if delay is None:
                raise StepFailed(failure)
            due = self.clock.now() + delay
            if self.deadline is not None and due >= self.deadline:
                raise StepFailed(failure)
            self.journal.retrying(
                self.step, attempt, failure, delay, due, item, announce_failure=not resumed
            )
        await sleep_until(self.clock, due)

    # -- helpers -------------------------------------------------------------------

    def _log_unexpected(self, error: Exception, attempt: AttemptRecord) -> None:
        """An agent's unexpected exception (not an AgentError or ProviderError
        it raised on purpose) is a bug to diagnose: its traceback is logged,
        since the failure the run records holds only its message."""
        if isinstance(error, AgentError | ProviderError):
            return
        cause = error.error if isinstance(error, AgentAborted) else error
        item = f" item {attempt.item}" if attempt.item >= 0 else ""
        log.warning(
            "agent %r raised %s in run %s step %r attempt %d%s",
            self.spec.agent,
            type(cause).__name__,
            self.journal.run.run_id,
            self.step.step_id,
            attempt.number,
            item,
            exc_info=cause,
            extra={
                "run_id": self.journal.run.run_id,
                "step_id": self.step.step_id,
                "attempt": attempt.number,
                "item": attempt.item,
            },
        )

    def _previous_attempts(self, item: int) -> list[AttemptRecord]:
        """Attempts made before a restart for this item; a new step has none
        (and a 10,000-item fan-out must not scan its attempts per item)."""
        if not self.resumed:
            return []
        if self._attempts_by_item is None:
            grouped: dict[int, list[AttemptRecord]] = {}
            for attempt in self.step.attempts:
                grouped.setdefault(attempt.item, []).append(attempt)
            self._attempts_by_item = grouped
        return self._attempts_by_item.get(item, [])

    def _item_queue(self, items: list[Any], indexes: list[int], scope: dict[str, Any]) -> ItemQueue:
        """The items left to run, with their concurrency keys if the step has any."""
        fan_out, key = self.spec.for_each, self.plan.concurrency_key
        if fan_out is None or key is None:
            return ItemQueue(indexes)
        keyed = []
        for index in indexes:
            item_scope = {**scope, "item": from_json_numbers(items[index]), "index": index}
            value = self._evaluate(key, item_scope)
            keyed.append((index, value if isinstance(value, str) else json.dumps(value)))
        return KeyedItemQueue(keyed, fan_out.max_per_key)

    async def _finished_items(self) -> list[ItemRecord]:
        """Items a fan-out or loop finished before a restart (none for a new step)."""
        if not self.resumed:
            return []
        return await self.services.store.items_of(self.journal.run.run_id, self.step.step_id)

    def _off_loop(self, scope: dict[str, Any]) -> bool:
        """Whether to evaluate the step's inputs in a worker thread: one of the
        variables its expressions name holds a large value (CEL converts each
        named variable whole, and a large result is checked and converted in
        Python: 0.7-1 s of the event loop for a 1 MiB input read whole). The
        step's own scope is looked at once; an item or iteration at each call."""
        names = self.plan.input_names
        if self._large_scope is None:
            shared = {key: value for key, value in self.scope.items() if key in names}
            self._large_scope = exceeds_json_size(shared, OFF_LOOP_BYTES)
        if self._large_scope:
            return True
        return any(
            exceeds_json_size(value, OFF_LOOP_BYTES)
            for key, value in scope.items()
            if key in names and key not in self.scope
        )

    def _inputs(self, scope: dict[str, Any]) -> dict[str, Any]:
        narrowed = self.plan.input_refs
        if not narrowed:
            return {key: self._evaluate(e, scope) for key, e in self.plan.inputs.items()}
        # An expression that reads fewer steps than the whole step is handed
        # only those (a wide join would otherwise be quadratic).
        steps = scope["steps"]
        inputs: dict[str, Any] = {}
        for key, expression in self.plan.inputs.items():
            refs = narrowed.get(key)
            if refs is None:
                inputs[key] = self._evaluate(expression, scope)
            else:
                own = {**scope, "steps": {s: steps[s] for s in refs if s in steps}}
                inputs[key] = self._evaluate(expression, own)
        return inputs

    def _evaluate(self, expression: Any, scope: dict[str, Any]) -> Any:
        """An expression's or a template's value; its failure fails the step."""
        try:
            if isinstance(expression, Template):
                return expression.render(scope)
            return expression.evaluate(scope)
        except ExpressionError as error:
            raise StepFailed(Failure(INVALID_INPUT, str(error), retryable=False)) from None

    def _check_deadline(self) -> None:
        if self.deadline is not None and self.clock.now() >= self.deadline:
            raise StepFailed(Failure(TIMEOUT, self._timeout_message(), retryable=False))

    def _attempt_due(self, start: float) -> float | None:
        """When an attempt started at `start` is cut off: the earlier of its
        own timeout and the step's deadline (None: never)."""
        attempt_timeout, deadline = self.spec.attempt_timeout, self.deadline
        if attempt_timeout is None:
            return deadline
        due = start + attempt_timeout
        return due if deadline is None else min(due, deadline)

    def _timeout_message(self) -> str:
        if self.deadline is not None and self.clock.now() >= self.deadline:
            return f"step timed out after {self.spec.timeout:g}s"
        return f"attempt timed out after {self.spec.attempt_timeout:g}s"


def _traceparent(run_id: str, step_id: str, attempt: AttemptRecord) -> str:
    """W3C trace context: the run is the trace, the attempt a span of it."""
    trace_id = hashlib.sha256(run_id.encode()).hexdigest()[:32]
    span = f"{step_id}/{attempt.item}/{attempt.number}"
    span_id = hashlib.sha256(f"{run_id}/{span}".encode()).hexdigest()[:16]
    return f"00-{trace_id}-{span_id}-01"


async def _await(future: asyncio.Future[tuple[bool, str]]) -> tuple[bool, str]:
    return await future
