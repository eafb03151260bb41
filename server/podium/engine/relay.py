"""The task relay (cluster mode): a worker connected to one server runs the
steps of runs another server owns, through the database they share.

The owner's side: a step whose agent no local worker serves, while a live
server of the cluster has a worker that does, posts its attempt (with the
owner's fencing epoch) instead of sending it to a local session, and awaits
the outcome, read back by the poll pass. Cancelled (run cancel, timeout), it
raises the task's cancel flag. A task whose holder's lease lapsed ends as an
interrupted attempt, retried by the normal rules; an outcome stamped with an
epoch other than the one this server holds is not recorded (the run moved).

The holder's side: each poll pass claims the pending tasks its connected
workers serve (as many as they have free slots), runs each through the local
WorkerPool like a local attempt (heartbeats, schema checks, cancel on the
cancel flag) and writes its outcome back.

A server that takes a run over adopts the run's relayed attempts: an attempt
in flight on a worker (or already finished there) is awaited, not run again.

Presence: what this server's workers serve is written whenever it changes;
the others' is read every pass and counts only for servers whose lease is live.
A relayed attempt therefore starts within about two poll intervals (post, then
the holder's pass) and its outcome is seen within about two more.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podium.core.failures import AgentError, failure_from_exception
from podium.core.model import AttemptRecord
from podium.engine.relay_store import PendingTask, RelayStore, RelayTask, WorkerOffer
from podium.engine.workers import (
    AgentDeclaration,
    AttemptInterrupted,
    RemoteTask,
    Reservation,
    WorkerPool,
)
from podium.plugins.api import LlmGateway, StepContext, ToolSpec

__all__ = ["CallHandler", "RelayedContext", "TaskRelay", "remote_task_payload"]

log = logging.getLogger("podium.engine.relay")
# The kind of call a worker's progress report travels as (answered with nothing).
PROGRESS = "progress"
# A pending task is withdrawn (its attempt interrupted, retried by the step's
# rules) once no live server has served its agent for this long: presence is
# read per poll pass, and a server whose lease renewal is late on a loaded
# machine drops out of it for a pass or two (an attempt was interrupted 16 ms
# after it was relayed to a worker that was there).
UNSERVED_GRACE = 1.0
# Carries out a relayed governed call on the attempt's context: (context, kind, request) -> answer.
CallHandler = Callable[["StepContext", str, bytes], Awaitable[bytes]]


def remote_task_payload(task: RemoteTask) -> dict[str, Any]:
    """What a relayed task carries besides its RelayTask fields."""
    return {
        "workflow_id": task.workflow_id,
        "input": task.input,
        "config": dict(task.config),
        "attempt_deadline": task.attempt_deadline,
        "step_deadline": task.step_deadline,
        "heartbeat_timeout": task.heartbeat_timeout,
        "traceparent": task.traceparent,
        "tools": [
            {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}
            for t in task.tools
        ],
    }


def _remote_task(task: RelayTask, token: str) -> RemoteTask:
    payload = task.payload
    return RemoteTask(
        token=token,
        run_id=task.run_id,
        workflow_id=str(payload.get("workflow_id", "")),
        step_id=task.step_id,
        item=task.item,
        attempt=task.attempt,
        agent=task.agent,
        queue=task.queue,
        input=payload.get("input"),
        config=payload.get("config") or {},
        attempt_deadline=payload.get("attempt_deadline"),
        step_deadline=payload.get("step_deadline"),
        heartbeat_timeout=float(payload["heartbeat_timeout"]),
        traceparent=str(payload.get("traceparent", "")),
        tools=[ToolSpec(t["name"], t["description"], t["parameters"]) for t in payload["tools"]],
    )


class RelayedContext:
    """The step context of an attempt this server runs for another server's run
    (podium.plugins.api.StepContext). Governed calls (models, tools) belong to the
    run's owner, which records them: the worker servicer hands them to
    `relay_call` (the worker protocol's request, as bytes) and the owner carries
    them out on the attempt's own context; progress reports go to the owner too."""

    def __init__(self, relay: TaskRelay, task_id: int, task: RelayTask) -> None:
        self._relay = relay
        self._task_id = task_id
        self._task = task

    async def relay_call(self, kind: str, request: bytes) -> bytes:
        """The owner's answer to a governed call (b"" when it could not carry it out)."""
        return await self._relay.call(self._task_id, kind, request)

    @property
    def run_id(self) -> str:
        return self._task.run_id

    @property
    def step_id(self) -> str:
        return self._task.step_id

    @property
    def attempt(self) -> int:
        return self._task.attempt

    @property
    def input(self) -> Any:
        return self._task.payload.get("input")

    @property
    def config(self) -> Mapping[str, Any]:
        config: Mapping[str, Any] = self._task.payload.get("config") or {}
        return config

    @property
    def llm(self) -> LlmGateway:
        raise RuntimeError("a relayed attempt's model calls go through relay_call")

    @property
    def tools(self) -> Sequence[ToolSpec]:
        return _remote_task(self._task, "").tools

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> Any:
        raise RuntimeError("a relayed attempt's tool calls go through relay_call")

    def report(self, progress: float, message: str = "") -> None:
        self._relay.report(self._task_id, progress, message)


@dataclass(eq=False)
class _Awaited:
    """An outcome the owner waits for."""

    run_id: str
    future: asyncio.Future[Mapping[str, Any]]
    # The attempt's context: governed calls relayed by the holder run on it.
    context: StepContext
    # What the task needs (None for an adopted one): withdrawn when no live server serves it.
    needs: tuple[str, str, str] | None = None
    # Since when (time.time) no live server was seen to serve it; None: served.
    unserved_since: float | None = None


@dataclass(eq=False)
class _Held:
    """A task this server claimed and runs on a local worker."""

    pending: PendingTask
    task: asyncio.Task[None] | None = None
    cancelled: bool = False


class TaskRelay:
    def __init__(
        self, store: RelayStore, pool: WorkerPool, *, unserved_grace: float = UNSERVED_GRACE
    ) -> None:
        self.store = store
        self._pool = pool
        self._unserved_grace = unserved_grace
        self._elsewhere: dict[str, list[WorkerOffer]] = {}
        self._published: frozenset[WorkerOffer] | None = None
        self._published_declarations = ""
        self._offer_waiters: list[tuple[tuple[str, str, str], asyncio.Future[None]]] = []
        self._awaited: dict[int, _Awaited] = {}
        self._held: dict[int, _Held] = {}
        # (run_id, step_id, item, attempt) -> task id, for runs taken over.
        self._adopted: dict[tuple[str, str, int, int], int] = {}
        # Runs with tasks in the relay: their tasks are removed when they end.
        self._relayed_runs: set[str] = set()
        self._chores: set[asyncio.Task[Any]] = set()
        # Governed calls: the owner's handler, the calls being carried out here (as
        # owner) and the answers awaited here (as holder).
        self._call_handler: CallHandler | None = None
        self._answering: set[int] = set()
        self._calls: dict[int, asyncio.Future[bytes]] = {}
        # Set by stop(): the owner's attempts cut short by a shutdown keep running
        # on their workers (the run's next owner adopts them).
        self._stopping = False

    # -- presence ------------------------------------------------------------------

    def offered(self, queue: str, agent: str, tenant: str) -> bool:
        """Whether a live server of the cluster has a worker for `agent` on `queue`
        (for a run of `tenant`), as of the last poll pass."""
        return any(
            offer.takes(queue, agent, tenant)
            for offers in self._elsewhere.values()
            for offer in offers
        )

    def served_elsewhere(self) -> dict[tuple[str, str], list[str]]:
        """(agent, queue) -> the other live servers whose workers serve it, sorted
        (as of the last poll pass; any tenant)."""
        found: dict[tuple[str, str], set[str]] = {}
        for server, offers in self._elsewhere.items():
            for offer in offers:
                found.setdefault((offer.agent, offer.queue), set()).add(server)
        return {key: sorted(servers) for key, servers in sorted(found.items())}

    async def wait_offered(self, queue: str, agent: str, tenant: str) -> None:
        """Returns once another live server has a worker for it."""
        if self.offered(queue, agent, tenant):
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = ((queue, agent, tenant), waiter)
        self._offer_waiters.append(entry)
        try:
            await waiter
        finally:
            with contextlib.suppress(ValueError):
                self._offer_waiters.remove(entry)

    # -- the owner's side ------------------------------------------------------------

    def serve_calls(self, handler: CallHandler) -> None:
        """Who carries out the governed calls of this server's relayed attempts
        (`handler(context, kind, request)` returns the answer's bytes)."""
        self._call_handler = handler

    async def execute(self, task: RelayTask, context: StepContext) -> Any:
        """Posts the attempt and returns its output; raises what its outcome says
        (AgentError, AttemptInterrupted). Cancelled, it raises the cancel flag."""
        task_id = await self.store.post(task, time.time())
        self._relayed_runs.add(task.run_id)
        log.info(
            "run %s step %r attempt %d relayed (task %d)",
            task.run_id,
            task.step_id,
            task.attempt,
            task_id,
            extra={"run_id": task.run_id, "step_id": task.step_id},
        )
        needs = (task.queue, task.agent, task.tenant)
        return await self._outcome(task_id, task.run_id, context, needs)

    def epoch(self, run_id: str) -> int:
        """The fencing epoch this server holds for a run it drives."""
        epoch = self.store.held_epoch(run_id)
        if epoch is None:
            raise AttemptInterrupted(f"run {run_id} is no longer owned by this server")
        return epoch

    async def adopt(self, run_ids: list[str]) -> None:
        """Adopts the relayed attempts of runs this server just took over."""
        for adopted in await self.store.adopt(run_ids):
            key = (adopted.run_id, adopted.step_id, adopted.item, adopted.attempt)
            self._adopted[key] = adopted.task_id
            self._relayed_runs.add(adopted.run_id)
        if self._adopted:
            log.info("relay: adopted %d relayed attempts of runs taken over", len(self._adopted))

    def adopted(self, run_id: str) -> Callable[[str, AttemptRecord], bool]:
        """Whether an in-flight attempt of a step of `run_id` is relayed and adopted
        (it is awaited on resume instead of being recorded as interrupted)."""

        def keeps(step_id: str, attempt: AttemptRecord) -> bool:
            return (run_id, step_id, attempt.item, attempt.number) in self._adopted

        return keeps

    async def resume(
        self, run_id: str, step_id: str, attempt: AttemptRecord, context: StepContext
    ) -> Any:
        """The outcome of an adopted attempt, as `execute` gives it."""
        task_id = self._adopted.pop((run_id, step_id, attempt.item, attempt.number), None)
        if task_id is None:
            raise AttemptInterrupted("the relayed attempt is gone")
        return await self._outcome(task_id, run_id, context, None)

    def run_ended(self, run_id: str) -> None:
        """Removes a finished run's tasks (only a run that had some)."""
        if run_id in self._relayed_runs:
            self._relayed_runs.discard(run_id)
            for key in [k for k in self._adopted if k[0] == run_id]:
                del self._adopted[key]
            self._chore(self.store.forget_run(run_id))

    async def _outcome(
        self,
        task_id: int,
        run_id: str,
        context: StepContext,
        needs: tuple[str, str, str] | None,
    ) -> Any:
        future: asyncio.Future[Mapping[str, Any]] = asyncio.get_running_loop().create_future()
        self._awaited[task_id] = _Awaited(run_id, future, context, needs)
        try:
            outcome = await future
        except asyncio.CancelledError:
            if not self._stopping:
                self._chore(self.store.cancel(task_id))
            raise
        finally:
            self._awaited.pop(task_id, None)
        return _result(outcome)

    # -- the poll pass ------------------------------------------------------------------

    async def start(self) -> None:
        """At start-up: ends what this server id held in an earlier life."""
        abandoned = await self.store.abandon_held()
        if abandoned:
            log.warning(
                "relay: %d relayed attempts held before a restart end interrupted", abandoned
            )
        await self._publish()

    async def poll(self) -> None:
        """One pass: presence both ways, the owner's outcomes, the holder's claims
        and cancels."""
        now = time.time()
        await self._publish()
        elsewhere = await self.store.offers_elsewhere(now)
        if elsewhere != self._elsewhere:
            for declaration in (await self.store.declarations_elsewhere(now)).values():
                self._pool.learn(_declaration(declaration))
        self._elsewhere = elsewhere
        self._wake_offered()
        if self._awaited:
            await self._check_awaited(now)
            await self._carry_out_calls()
        if self._held:
            await self._check_cancelled()
        if self._calls:
            await self._check_answers()
        await self._claim(now)

    # -- governed calls ---------------------------------------------------------------

    async def call(self, task_id: int, kind: str, request: bytes) -> bytes:
        """As the holder: posts a governed call for the task's owner and awaits its answer."""
        call_id = await self.store.post_call(task_id, kind, request, time.time())
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = future
        try:
            return await future
        finally:
            self._calls.pop(call_id, None)
            self._chore(self.store.drop_call(call_id))

    def report(self, task_id: int, progress: float, message: str) -> None:
        """As the holder: a worker's progress report, for the owner (nobody awaits it)."""
        body = json.dumps({"progress": progress, "message": message}).encode()
        self._chore(self.store.post_call(task_id, PROGRESS, body, time.time()))

    async def _check_answers(self) -> None:
        answers = await self.store.call_answers(list(self._calls))
        for call_id, answer in answers.items():
            future = self._calls.get(call_id)
            if future is not None and not future.done():
                future.set_result(answer)

    async def _carry_out_calls(self) -> None:
        """As the owner: the calls the holders of the awaited tasks posted."""
        calls = await self.store.open_calls(list(self._awaited))
        for call in calls:
            awaited = self._awaited.get(call.task_id)
            if awaited is None or call.call_id in self._answering:
                continue
            if call.kind == PROGRESS:
                report = json.loads(call.request)
                awaited.context.report(float(report["progress"]), str(report["message"]))
                await self.store.answer_call(call.call_id, b"")
                continue
            self._answering.add(call.call_id)
            self._chore(self._answer(call.call_id, call.kind, call.request, awaited.context))

    async def _answer(self, call_id: int, kind: str, request: bytes, context: StepContext) -> None:
        try:
            answer = b""
            handler = self._call_handler
            if handler is not None:
                try:
                    answer = await handler(context, kind, request)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("relay: call %d (%s) failed", call_id, kind)
            await self.store.answer_call(call_id, answer)
        finally:
            self._answering.discard(call_id)

    async def stop(self) -> None:
        """Stops the attempts held for other servers (their outcome: interrupted, so
        their owners retry them at once) and the background writes."""
        self._stopping = True
        held = list(self._held.items())
        for _, entry in held:
            if entry.task is not None:
                entry.task.cancel()
        for task_id, entry in held:
            if entry.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await entry.task
            if not entry.cancelled:
                with contextlib.suppress(Exception):
                    await self.store.finish(
                        task_id, {"interrupted": "the server holding the worker stopped"}
                    )
        self._held.clear()
        for chore in list(self._chores):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await chore

    def republish(self) -> None:
        """Writes this server's worker presence again at the next poll pass, changed
        or not (the rows may have been deleted while this server's lease had expired)."""
        self._published = None

    async def _publish(self) -> None:
        offers = frozenset(self._pool.offers())
        declarations = {
            name: _declaration_json(d) for name, d in self._pool.session_declarations().items()
        }
        fingerprint = json.dumps(declarations, sort_keys=True, default=str)
        if offers != self._published or fingerprint != self._published_declarations:
            await self.store.set_offers(offers, declarations)
            self._published = offers
            self._published_declarations = fingerprint

    def _wake_offered(self) -> None:
        for (queue, agent, tenant), waiter in list(self._offer_waiters):
            if not waiter.done() and self.offered(queue, agent, tenant):
                waiter.set_result(None)

    async def _check_awaited(self, now: float) -> None:
        asked = list(self._awaited)
        statuses = await self.store.statuses(asked, now)
        # Only the tasks asked about: one awaited meanwhile is not in `statuses`
        # (yet it is not gone).
        for task_id in asked:
            awaited = self._awaited.get(task_id)
            if awaited is None:
                continue
            future = awaited.future
            if future.done():
                continue
            status = statuses.get(task_id)
            if status is None:
                log.warning("relay: awaited task %d of run %s is gone", task_id, awaited.run_id)
                future.set_result({"interrupted": "the relayed task was removed"})
            elif status.state == "DONE":
                held = self.store.held_epoch(awaited.run_id)
                if status.epoch != held:
                    # Adopted by a newer owner: its outcome is that owner's to record.
                    future.set_result(
                        {"interrupted": f"the run's owner changed (epoch {status.epoch})"}
                    )
                else:
                    future.set_result(dict(status.outcome or {}))
            elif status.state == "CLAIMED" and not status.holder_live:
                future.set_result(
                    {"interrupted": f"server {status.holder!r} holding the worker stopped"}
                )
            elif status.state == "PENDING" and awaited.needs is not None:
                if self.offered(*awaited.needs):
                    awaited.unserved_since = None
                    continue
                if awaited.unserved_since is None:
                    awaited.unserved_since = now
                if now - awaited.unserved_since < self._unserved_grace:
                    continue
                if await self.store.withdraw(task_id):
                    queue, agent, _ = awaited.needs
                    future.set_result(
                        {"interrupted": f"no live server serves agent {agent!r} on {queue!r}"}
                    )

    async def _check_cancelled(self) -> None:
        for task_id in await self.store.cancelled(list(self._held)):
            entry = self._held.get(task_id)
            if entry is not None and not entry.cancelled and entry.task is not None:
                log.info("relay: task %d was cancelled or given up by its owner", task_id)
                entry.cancelled = True
                entry.task.cancel()

    async def _claim(self, now: float) -> None:
        offers = self._published or frozenset()
        free = self._pool.free_slots()
        if not offers or free <= 0:
            return
        for pending in await self.store.pending(offers, free):
            task = pending.task
            reservation = self._pool.try_reserve(task.queue, task.agent, task.tenant)
            if reservation is None:
                continue
            if not await self.store.claim(pending.task_id, now):
                self._pool.release(reservation)
                continue
            entry = _Held(pending)
            self._held[pending.task_id] = entry
            entry.task = asyncio.create_task(
                self._run(entry, reservation), name=f"podium-relay-{pending.task_id}"
            )
            log.info(
                "relay: running task %d of server %r (run %s step %r attempt %d)",
                pending.task_id,
                pending.owner,
                task.run_id,
                task.step_id,
                task.attempt,
                extra={"run_id": task.run_id, "step_id": task.step_id},
            )

    async def _run(self, entry: _Held, reservation: Reservation) -> None:
        pending = entry.pending
        context = RelayedContext(self, pending.task_id, pending.task)
        outcome: dict[str, Any]
        try:
            output = await self._pool.execute(
                reservation, context, lambda token: _remote_task(pending.task, token)
            )
            outcome = {"output": output}
        except asyncio.CancelledError:
            if entry.cancelled:  # its owner gave up on it: nobody reads an outcome
                self._held.pop(pending.task_id, None)
                self._chore(self.store.remove(pending.task_id))
                return
            raise  # stopping: stop() records it interrupted
        except AttemptInterrupted as interrupted:
            outcome = {"interrupted": interrupted.failure.message}
        except AgentError as error:
            outcome = {
                "failure": {"type": error.code, "message": str(error), "retryable": error.retryable}
            }
        except Exception as error:
            failure = failure_from_exception(error)
            outcome = {
                "failure": {
                    "type": failure.type,
                    "message": failure.message,
                    "retryable": failure.retryable,
                }
            }
        finally:
            self._pool.release(reservation)
        self._held.pop(pending.task_id, None)
        try:
            if not await self.store.finish(pending.task_id, outcome):
                log.info("relay: task %d was given up by its owner", pending.task_id)
        except Exception:
            log.exception("relay: could not record the outcome of task %d", pending.task_id)

    def _chore(self, work: Any) -> None:
        """A background write whose failure is logged (the pass after retries what matters)."""

        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("relay: background write failed")

        task = asyncio.ensure_future(run())
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)


def _declaration_json(declaration: AgentDeclaration) -> dict[str, Any]:
    return {
        "name": declaration.name,
        "version": declaration.version,
        "description": declaration.description,
        "config_schema": _plain(declaration.config_schema),
        "input_schema": _plain(declaration.input_schema),
        "output_schema": _plain(declaration.output_schema),
    }


def _plain(schema: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if schema is None else json.loads(json.dumps(schema, default=str))


def _declaration(data: Mapping[str, Any]) -> AgentDeclaration:
    return AgentDeclaration(
        name=str(data["name"]),
        version=str(data.get("version", "")),
        description=str(data.get("description", "")),
        config_schema=data.get("config_schema"),
        input_schema=data.get("input_schema"),
        output_schema=data.get("output_schema"),
    )


def _result(outcome: Mapping[str, Any]) -> Any:
    if "output" in outcome:
        return outcome["output"]
    failure = outcome.get("failure")
    if isinstance(failure, Mapping):
        raise AgentError(
            str(failure.get("message", "")),
            code=str(failure.get("type") or "WorkerError"),
            retryable=bool(failure.get("retryable", True)),
        )
    raise AttemptInterrupted(str(outcome.get("interrupted", "the relayed attempt was lost")))
