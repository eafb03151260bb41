"""Agents served by workers: the sessions of connected workers, the slots they
advertise, and the attempts delegated to them.

The engine sees a remote agent as an agent whose execution is delegated: a
step runner reserves a slot of a session serving the step's queue and agent
(waiting while there is none), records its attempt durably, then `execute`s
it here, which sends the task through the session's `WorkerLink` and awaits
the worker's outcome under a heartbeat lease. Nothing here knows about gRPC:
the worker servicer implements `WorkerLink` and feeds what the worker says
into `WorkerPool`.

Slots: a session never has more attempts than its `capacity` counted as
busy: reserved, running, or cancelled/interrupted and not yet ended by the
worker (it may still be running them).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from podium.core.clock import Clock, DeadlineExceeded, run_until
from podium.core.failures import INTERRUPTED, INVALID_INPUT, INVALID_OUTPUT, AgentError, Failure
from podium.core.model import DEFAULT_TENANT
from podium.core.schemas import first_violation, schema_problem
from podium.engine.relay_store import WorkerOffer
from podium.plugins.api import StepContext, ToolSpec

__all__ = [
    "DEFAULT_HEARTBEAT_TIMEOUT",
    "DEFAULT_QUEUE",
    "AgentDeclaration",
    "AttemptInterrupted",
    "DeclaredAgent",
    "RemoteTask",
    "Reservation",
    "WorkerLink",
    "WorkerPool",
    "WorkerSession",
    "check_schema",
]

DEFAULT_QUEUE = "default"
DEFAULT_HEARTBEAT_TIMEOUT = 30.0
log = logging.getLogger("podium.engine.workers")


def check_schema(schema: Mapping[str, Any]) -> str | None:
    """Why `schema` is not a JSON Schema, or None when it is one."""
    return schema_problem(schema)


def _violation(schema: Mapping[str, Any] | None, value: Any) -> str | None:
    return first_violation(schema, value)


@dataclass(frozen=True, slots=True)
class AgentDeclaration:
    """An agent as a worker declares it."""

    name: str
    version: str = ""
    description: str = ""
    config_schema: Mapping[str, Any] | None = None
    input_schema: Mapping[str, Any] | None = None
    output_schema: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RemoteTask:
    """What a worker receives for one attempt (the AttemptTask of the contract)."""

    token: str
    run_id: str
    workflow_id: str
    step_id: str
    item: int
    attempt: int
    agent: str
    queue: str
    input: Any
    config: Mapping[str, Any]
    attempt_deadline: float | None
    step_deadline: float | None
    heartbeat_timeout: float
    traceparent: str
    tools: Sequence[ToolSpec]


class DeclaredAgent:
    """A worker-declared agent as workflow validation sees it: a step's
    config is checked against its config_schema. It never runs here."""

    def __init__(self, declaration: AgentDeclaration) -> None:
        self.declaration = declaration
        self.name = declaration.name
        self.description = declaration.description
        self.version = declaration.version

    @property
    def config_schema(self) -> Mapping[str, Any] | None:
        """Checked by plugins.api.config_problems, each violation named by its field."""
        return self.declaration.config_schema

    async def run(self, ctx: StepContext) -> Any:
        raise RuntimeError(f"agent {self.name!r} runs on workers: step runners delegate it")


class WorkerLink(Protocol):
    """How the pool talks to one worker session (the servicer implements it).
    Sends never block; after the session ended they are dropped."""

    def send_task(self, task: RemoteTask) -> None: ...
    def send_cancel(self, token: str, reason: str) -> None: ...
    def send_rejected(self, token: str, reason: str) -> None: ...
    def close(self) -> None:
        """Ends the session from the server's side (shutdown)."""
        ...


class AttemptInterrupted(Exception):
    """The attempt's worker went away or stopped heartbeating it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.failure = Failure(INTERRUPTED, message, retryable=True)


@dataclass(eq=False)
class Reservation:
    """A slot of a session, then the attempt running in it."""

    session: WorkerSession
    agent: AgentDeclaration
    queue: str
    token: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    context: StepContext | None = None
    outcome: asyncio.Future[Any] | None = None
    last_heartbeat: float = 0.0
    heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT


@dataclass(eq=False)
class WorkerSession:
    id: str
    identity: str
    sdk: str
    queues: tuple[str, ...]
    agents: Mapping[str, AgentDeclaration]
    capacity: int
    link: WorkerLink
    # Slots taken before the task is sent.
    reserved: set[Reservation] = field(default_factory=set)
    running: dict[str, Reservation] = field(default_factory=dict)
    # Cancelled or interrupted attempts the worker may still be running.
    draining: dict[str, Reservation] = field(default_factory=dict)
    closed: bool = False
    # The tenant whose runs' tasks the session receives (its credential's);
    # None for an admin's or an unauthenticated worker: every tenant's.
    tenant: str | None = None

    def takes(self, queue: str, agent: str, tenant: str) -> bool:
        return (
            queue in self.queues
            and agent in self.agents
            and (self.tenant is None or self.tenant == tenant)
        )

    @property
    def busy(self) -> int:
        return len(self.reserved) + len(self.running) + len(self.draining)

    def free(self) -> int:
        return 0 if self.closed else self.capacity - self.busy


@dataclass(frozen=True, slots=True)
class AgentServing:
    """ListAgents' view of one agent on one queue."""

    agent: AgentDeclaration
    queue: str
    sessions: int
    capacity: int
    running: int


class WorkerPool:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._sessions: dict[str, WorkerSession] = {}
        self._ids = itertools.count(1)
        # (queue, agent) -> step runners waiting for a slot, with their run's tenant,
        # first come first served (among those a freed session may take).
        self._waiting: dict[tuple[str, str], deque[tuple[str, asyncio.Future[Reservation]]]] = {}
        # Every agent a worker declared since the server started, by name (the
        # latest declaration wins): workflows may name them while no worker is
        # connected.
        self._declared: dict[str, AgentDeclaration] = {}
        self._closed = False

    @property
    def session_count(self) -> int:
        """Worker sessions connected now (for metrics)."""
        return len(self._sessions)

    # -- what the engine asks --------------------------------------------------------

    def serves(self, queue: str, agent: str, tenant: str = DEFAULT_TENANT) -> bool:
        """Whether a session takes `agent`'s tasks on `queue` for a run of `tenant`."""
        return any(s.takes(queue, agent, tenant) for s in self._sessions.values())

    def offers(self) -> set[WorkerOffer]:
        """What the connected sessions serve (cluster presence)."""
        return {
            WorkerOffer(queue, agent, session.tenant)
            for session in self._sessions.values()
            for queue in session.queues
            for agent in session.agents
        }

    def session_declarations(self) -> dict[str, AgentDeclaration]:
        """The agents the connected sessions declare, by name."""
        return {
            name: agent
            for session in self._sessions.values()
            for name, agent in session.agents.items()
        }

    def learn(self, declaration: AgentDeclaration) -> None:
        """An agent a worker connected to another server of the cluster declares:
        workflows may name it here too (a session connected here has the last word)."""
        if not any(declaration.name in s.agents for s in self._sessions.values()):
            self._declared[declaration.name] = declaration

    def free_slots(self) -> int:
        """Free slots over every session (whatever they serve)."""
        return sum(max(0, session.free()) for session in self._sessions.values())

    def declared(self, agent: str) -> AgentDeclaration | None:
        return self._declared.get(agent)

    def try_reserve(
        self, queue: str, agent: str, tenant: str = DEFAULT_TENANT
    ) -> Reservation | None:
        """A slot of the serving session (for a run of `tenant`) with the most free
        slots (spreading attempts over workers), or None when every one is full."""
        serving = [s for s in self._sessions.values() if s.takes(queue, agent, tenant)]
        best = max(serving, key=WorkerSession.free, default=None)
        if best is None or best.free() <= 0:
            return None
        return self._reserve(best, queue, agent)

    async def reserve(self, queue: str, agent: str, tenant: str = DEFAULT_TENANT) -> Reservation:
        """A slot of a session serving `agent` on `queue` for a run of `tenant`,
        waiting for one."""
        reservation = self.try_reserve(queue, agent, tenant)
        if reservation is not None:
            return reservation
        waiter: asyncio.Future[Reservation] = asyncio.get_running_loop().create_future()
        entry = (tenant, waiter)
        self._waiting.setdefault((queue, agent), deque()).append(entry)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())
            else:
                waiters = self._waiting.get((queue, agent))
                if waiters is not None and entry in waiters:
                    waiters.remove(entry)
            raise

    def release(self, reservation: Reservation) -> None:
        """Gives back a slot whose task was never sent."""
        session = reservation.session
        if reservation in session.reserved:
            session.reserved.discard(reservation)
            self._grant(session)

    async def execute(
        self,
        reservation: Reservation,
        context: StepContext,
        task: Callable[[str], RemoteTask],
    ) -> Any:
        """Sends the attempt to the reservation's worker and returns its output;
        raises what the worker's failure says (AgentError), AttemptInterrupted
        when its lease lapses or its session ends. Cancelled (run cancel,
        timeout), it tells the worker to stop."""
        session, agent = reservation.session, reservation.agent
        remote = task(reservation.token)
        problem = _violation(agent.input_schema, remote.input)
        if problem is None:
            problem = _violation(agent.config_schema, dict(remote.config))
        if problem is not None:
            self.release(reservation)
            raise AgentError(
                f"the step's input or config violates agent {agent.name!r}'s schema: {problem}",
                code=INVALID_INPUT,
                retryable=False,
            )
        session.reserved.discard(reservation)
        if session.closed:
            self._grant(session)
            raise AttemptInterrupted(f"worker {session.identity!r} disconnected")
        reservation.context = context
        reservation.outcome = asyncio.get_running_loop().create_future()
        reservation.heartbeat_timeout = remote.heartbeat_timeout
        reservation.last_heartbeat = self.clock.now()
        session.running[reservation.token] = reservation
        session.link.send_task(remote)
        try:
            output = await self._outcome(reservation)
        except asyncio.CancelledError:
            if session.running.pop(reservation.token, None) is not None:
                session.draining[reservation.token] = reservation
                session.link.send_cancel(reservation.token, "the attempt was cancelled")
            raise
        problem = _violation(agent.output_schema, output)
        if problem is not None:
            raise AgentError(
                f"agent {agent.name!r} returned output that violates its output schema: {problem}",
                code=INVALID_OUTPUT,
                retryable=False,
            )
        return output

    def context(self, token: str) -> StepContext | None:
        """The step context of a running attempt, by its token (governed calls)."""
        for session in self._sessions.values():
            reservation = session.running.get(token)
            if reservation is not None:
                return reservation.context
        return None

    def serving(self) -> list[AgentServing]:
        by_key: dict[tuple[str, str], list[WorkerSession]] = {}
        for session in self._sessions.values():
            for queue in session.queues:
                for name in session.agents:
                    by_key.setdefault((name, queue), []).append(session)
        views = []
        for (name, queue), sessions in sorted(by_key.items()):
            running = sum(1 for s in sessions for r in s.running.values() if r.agent.name == name)
            views.append(
                AgentServing(
                    self._declared[name],
                    queue,
                    len(sessions),
                    sum(s.capacity for s in sessions),
                    running,
                )
            )
        return views

    def declarations(self) -> list[AgentDeclaration]:
        return [self._declared[name] for name in sorted(self._declared)]

    # -- what the workers say ----------------------------------------------------------

    def open(
        self,
        *,
        identity: str,
        sdk: str,
        queues: Iterable[str],
        agents: Iterable[AgentDeclaration],
        capacity: int,
        link: WorkerLink,
        tenant: str | None = None,
    ) -> WorkerSession | None:
        """A new session, taking the tasks of `tenant`'s runs (None: every tenant's);
        None when the server is shutting down."""
        if self._closed:
            return None
        agents_by_name = {agent.name: agent for agent in agents}
        session = WorkerSession(
            f"ws-{next(self._ids)}",
            identity,
            sdk,
            tuple(dict.fromkeys(queues)),
            agents_by_name,
            capacity,
            link,
            tenant=tenant,
        )
        self._sessions[session.id] = session
        self._declared.update(agents_by_name)
        log.info(
            "worker %r connected (%s): queues %s, agents %s, %d at once",
            identity,
            session.id,
            ",".join(session.queues),
            ",".join(agents_by_name),
            capacity,
        )
        self._grant(session)
        return session

    def close(self, session: WorkerSession) -> None:
        """The session ended: its running attempts are interrupted."""
        if session.closed:
            return
        session.closed = True
        self._sessions.pop(session.id, None)
        log.info("worker %r disconnected (%s)", session.identity, session.id)
        if self._closed:
            return  # shutting down: the engine stops the runs resumably
        for reservation in list(session.running.values()):
            self._interrupt(reservation, f"worker {session.identity!r} disconnected")
        session.running.clear()
        session.draining.clear()

    def heartbeat(self, session: WorkerSession, tokens: Iterable[str]) -> None:
        now = self.clock.now()
        listed = set(tokens)
        for token in listed:
            reservation = session.running.get(token) or session.draining.get(token)
            if reservation is not None:
                reservation.last_heartbeat = now
        # A cancelled attempt the worker no longer runs frees its slot.
        ended = [t for t in session.draining if t not in listed]
        for token in ended:
            del session.draining[token]
        if ended:
            self._grant(session)

    def progress(self, session: WorkerSession, token: str, progress: float, message: str) -> None:
        reservation = session.running.get(token)
        if reservation is None or reservation.context is None:
            session.link.send_rejected(token, "not a running attempt of this session")
            return
        reservation.context.report(progress, message)

    def complete(self, session: WorkerSession, token: str, output: Any) -> None:
        reservation = self._ended(session, token)
        outcome = None if reservation is None else reservation.outcome
        if outcome is not None and not outcome.done():
            outcome.set_result(output)

    def fail(self, session: WorkerSession, token: str, failure: Failure) -> None:
        reservation = self._ended(session, token)
        outcome = None if reservation is None else reservation.outcome
        if outcome is not None and not outcome.done():
            outcome.set_exception(
                AgentError(failure.message, code=failure.type, retryable=failure.retryable)
            )

    def shutdown(self) -> None:
        """Ends every session (workers reconnect to the next server); the
        attempts they run are left to the engine's resumable stop."""
        self._closed = True
        for session in list(self._sessions.values()):
            session.link.close()
        for waiters in self._waiting.values():
            for _, waiter in waiters:
                waiter.cancel()
        self._waiting.clear()

    # -- internals ------------------------------------------------------------------------

    def _reserve(self, session: WorkerSession, queue: str, agent: str) -> Reservation:
        reservation = Reservation(session, session.agents[agent], queue)
        session.reserved.add(reservation)
        return reservation

    def _grant(self, session: WorkerSession) -> None:
        """Hands the session's free slots to waiting step runners."""
        self._expire_drained(session)
        for queue in session.queues:
            for agent in session.agents:
                waiters = self._waiting.get((queue, agent))
                if not waiters:
                    continue
                left: deque[tuple[str, asyncio.Future[Reservation]]] = deque()
                for tenant, waiter in waiters:
                    if waiter.done():
                        continue
                    if session.free() > 0 and session.takes(queue, agent, tenant):
                        waiter.set_result(self._reserve(session, queue, agent))
                    else:
                        left.append((tenant, waiter))
                if left:
                    self._waiting[(queue, agent)] = left
                else:
                    del self._waiting[(queue, agent)]

    def _expire_drained(self, session: WorkerSession) -> None:
        now = self.clock.now()
        for token, reservation in list(session.draining.items()):
            if now - reservation.last_heartbeat > reservation.heartbeat_timeout:
                del session.draining[token]

    def _ended(self, session: WorkerSession, token: str) -> Reservation | None:
        """The running attempt a worker reports the end of, freeing its slot;
        None (and the worker is told) when the token is stale."""
        reservation = session.running.pop(token, None)
        if reservation is None:
            stale = session.draining.pop(token, None)
            session.link.send_rejected(token, "stale attempt token: the attempt is not running")
            if stale is not None:
                self._grant(session)
            return None
        self._grant(session)
        return reservation

    async def _outcome(self, reservation: Reservation) -> Any:
        """The worker's outcome, or AttemptInterrupted when heartbeats lapse."""
        outcome = reservation.outcome
        assert outcome is not None
        while True:
            lapse = reservation.last_heartbeat + reservation.heartbeat_timeout
            if lapse <= self.clock.now() and not outcome.done():
                session = reservation.session
                if session.running.pop(reservation.token, None) is not None:
                    session.draining[reservation.token] = reservation
                    session.link.send_cancel(reservation.token, "heartbeat timeout")
                raise AttemptInterrupted(
                    f"worker {session.identity!r} sent no heartbeat for "
                    f"{reservation.heartbeat_timeout:g}s"
                )
            try:
                return await run_until(_wait(outcome), lapse, self.clock)
            except DeadlineExceeded:
                continue

    def _interrupt(self, reservation: Reservation, message: str) -> None:
        outcome = reservation.outcome
        if outcome is not None and not outcome.done():
            outcome.set_exception(AttemptInterrupted(message))


async def _wait(outcome: asyncio.Future[Any]) -> Any:
    # Shielded: a lapse of the heartbeat timer must not cancel the outcome itself.
    return await asyncio.shield(outcome)
