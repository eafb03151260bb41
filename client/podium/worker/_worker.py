"""A Python worker: one session with a Podium server (WorkerService.Connect),
running the attempts it receives, at most `concurrency` at once, with
heartbeats, progress, cancellation, and reconnection with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from podium.client._credentials import TlsOptions, aio_channel, resolve_tls, resolve_token
from podium.v1 import common_pb2, worker_service_pb2, worker_service_pb2_grpc
from podium.worker._context import FailureRaiser, WorkerStepContext, _default_raiser

__all__ = ["DEFAULT_QUEUE", "FailureOf", "SessionRejected", "Worker", "WorkerAgentSpec"]

DEFAULT_QUEUE = "default"
SDK = "podium-python/0.1.0"
INITIAL_BACKOFF = 0.05
MAX_BACKOFF = 2.0
DEFAULT_HEARTBEAT_TIMEOUT = 30.0
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.primary_user_agent", SDK),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    # Reconnects are this worker's own (with backoff), not grpc's long default waits.
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
log = logging.getLogger("podium.worker")

# An exception raised by an agent -> (failure type, message, retryable).
FailureOf = Callable[[BaseException], tuple[str, str, bool]]


def _default_failure_of(error: BaseException) -> tuple[str, str, bool]:
    code = getattr(error, "code", None)
    retryable = getattr(error, "retryable", True)
    if not isinstance(error, Exception):
        retryable = False
    name = code if isinstance(code, str) and code else type(error).__name__
    return name, str(error) or type(error).__name__, bool(retryable)


class SessionRejected(Exception):
    """The server refused the session (bad declaration): reconnecting would not help."""


@dataclass(frozen=True)
class WorkerAgentSpec:
    """An agent to serve: any object with name, description, version and
    `async run(ctx)`; JSON Schemas of its config, input and output are read
    from its attributes config_schema, input_schema, output_schema if set."""

    agent: Any

    def message(self) -> worker_service_pb2.WorkerAgent:
        agent = self.agent
        message = worker_service_pb2.WorkerAgent(
            name=agent.name,
            version=str(getattr(agent, "version", "")),
            description=str(getattr(agent, "description", "")),
        )
        for kind in ("config_schema", "input_schema", "output_schema"):
            schema = getattr(agent, kind, None)
            if schema is not None:
                getattr(message, kind).update(dict(schema))
        return message


_FINAL_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    }
)


class Worker:
    def __init__(
        self,
        address: str,
        agents: Sequence[Any],
        *,
        queues: Sequence[str] = (DEFAULT_QUEUE,),
        concurrency: int = 1,
        identity: str = "",
        raise_failure: FailureRaiser = _default_raiser,
        failure_of: FailureOf = _default_failure_of,
        on_rejected: Callable[[str, str], None] | None = None,
        token: str | None = None,
        tls: TlsOptions | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        """`token` (else $PODIUM_TOKEN) is sent as a bearer token (a server
        with authentication needs a `worker` role); `tls` (else $PODIUM_TLS_*)
        makes the channel TLS. `tracer_provider`: where the worker's span of
        each attempt goes (a child of the server's attempt span, from the
        task's traceparent); None: OpenTelemetry's global provider, a no-op
        unless one is set."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not agents:
            raise ValueError("a worker needs at least one agent")
        self.address = address
        self.agents = {agent.name: agent for agent in agents}
        self.queues = tuple(queues)
        self.concurrency = concurrency
        self.identity = identity or f"{socket.gethostname()}/pid-{os.getpid()}"
        self._raise = raise_failure
        self._failure_of = failure_of
        self._on_rejected = on_rejected
        self.tracer = trace.get_tracer("podium.worker", tracer_provider=tracer_provider)
        self._stopping = asyncio.Event()
        self.sessions = 0
        self._token = resolve_token(token)
        self._tls = resolve_tls(tls)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Serves until stop(); reconnects with backoff whenever the session ends."""
        backoff = INITIAL_BACKOFF
        while not self._stopping.is_set():
            opened = False
            try:
                async with aio_channel(
                    self.address, CHANNEL_OPTIONS, self._token, self._tls, []
                ) as channel:
                    session = _Session(self, channel)
                    opened = await session.serve(self._stopping)
            except SessionRejected:
                raise
            except grpc.aio.AioRpcError as error:
                if error.code() in _FINAL_CODES:
                    # Retrying would be refused the same way: bad options or
                    # credentials are the operator's to fix.
                    raise SessionRejected(error.details() or error.code().name) from None
                log.info("session ended: %s %s", error.code().name, error.details())
            if opened:
                backoff = INITIAL_BACKOFF
            if self._stopping.is_set():
                return
            delay = backoff * (0.5 + random.random())
            backoff = min(backoff * 2, MAX_BACKOFF)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    def open_message(self) -> worker_service_pb2.ConnectRequest:
        return worker_service_pb2.ConnectRequest(
            open=worker_service_pb2.OpenSession(
                identity=self.identity,
                queues=list(self.queues),
                agents=[WorkerAgentSpec(a).message() for a in self.agents.values()],
                max_concurrent_tasks=self.concurrency,
                sdk=SDK,
            )
        )


class _Session:
    def __init__(self, worker: Worker, channel: grpc.aio.Channel) -> None:
        self.worker = worker
        self.stub: worker_service_pb2_grpc.WorkerServiceAsyncStub = (
            worker_service_pb2_grpc.WorkerServiceStub(channel)
        )
        self.outbox: asyncio.Queue[worker_service_pb2.ConnectRequest | None] = asyncio.Queue()
        self.running: dict[str, asyncio.Task[None]] = {}
        self.heartbeat_timeout = DEFAULT_HEARTBEAT_TIMEOUT
        self.wake = asyncio.Event()

    async def _requests(self) -> AsyncIterator[worker_service_pb2.ConnectRequest]:
        yield self.worker.open_message()
        while (message := await self.outbox.get()) is not None:
            yield message

    async def serve(self, stopping: asyncio.Event) -> bool:
        """One session; True once the server accepted it."""
        call = self.stub.Connect(self._requests())
        heartbeats = asyncio.create_task(self._heartbeats())
        stop_watch = asyncio.create_task(stopping.wait())
        opened = False
        try:
            while True:
                read = asyncio.ensure_future(call.read())
                done, _ = await asyncio.wait(
                    {read, stop_watch}, return_when=asyncio.FIRST_COMPLETED
                )
                if read not in done:
                    read.cancel()
                    call.cancel()
                    return opened
                message = read.result()
                if message is grpc.aio.EOF:
                    return opened
                assert isinstance(message, worker_service_pb2.ConnectResponse)
                kind = message.WhichOneof("message")
                if kind == "opened":
                    opened = True
                    self.worker.sessions += 1
                    log.info(
                        "session %s opened with %s", message.opened.session_id, self.worker.address
                    )
                elif kind == "task":
                    self._start(message.task)
                elif kind == "cancel":
                    task = self.running.get(message.cancel.attempt_token)
                    if task is not None:
                        task.cancel()
                elif kind == "rejected":
                    rejected = message.rejected
                    log.info(
                        "server rejected a message about %s: %s",
                        rejected.attempt_token,
                        rejected.reason,
                    )
                    if self.worker._on_rejected is not None:
                        self.worker._on_rejected(rejected.attempt_token, rejected.reason)
        finally:
            stop_watch.cancel()
            heartbeats.cancel()
            # The attempts of a session that ended are no longer this worker's:
            # the server interrupts and retries them.
            for task in self.running.values():
                task.cancel()
            await asyncio.gather(heartbeats, *self.running.values(), return_exceptions=True)
            self.outbox.put_nowait(None)

    def _start(self, task: worker_service_pb2.AttemptTask) -> None:
        token = task.attempt_token
        if task.HasField("heartbeat_timeout"):
            timeout = task.heartbeat_timeout.ToNanoseconds() / 1e9
            if timeout < self.heartbeat_timeout:
                self.heartbeat_timeout = timeout
                self.wake.set()
        self.running[token] = asyncio.create_task(self._attempt(task))

    async def _attempt(self, task: worker_service_pb2.AttemptTask) -> None:
        token = task.attempt_token
        agent = self.worker.agents.get(task.agent)

        def report(progress: float, message: str = "") -> None:
            self.outbox.put_nowait(
                worker_service_pb2.ConnectRequest(
                    progress=worker_service_pb2.ReportProgress(
                        attempt_token=token, progress=progress, message=message
                    )
                )
            )

        span = _attempt_span(self.worker.tracer, task)
        try:
            if agent is None:
                raise LookupError(f"this worker does not serve agent {task.agent!r}")
            ctx = WorkerStepContext(task, self.stub, report, self.worker._raise)
            with trace.use_span(
                span, end_on_exit=False, record_exception=False, set_status_on_exception=False
            ):
                output = await agent.run(ctx)
            value = _value(output)
        except asyncio.CancelledError:
            span.set_attribute("podium.attempt.state", "CANCELLED")
            # Cancelled by the server (or the session ended): say so, which frees the slot.
            self._send_fail(token, "podium.Cancelled", "cancelled", False)
            log.info("%s: cancelled", _described(task))
            raise
        except _NotJson as error:
            _failed(span, "podium.InvalidOutput", str(error))
            self._send_fail(token, "podium.InvalidOutput", str(error), False)
            log.info("%s: failed podium.InvalidOutput", _described(task))
        except BaseException as error:
            type_, message, retryable = self.worker._failure_of(error)
            _failed(span, type_, message)
            self._send_fail(token, type_, message, retryable)
            log.info("%s: failed %s", _described(task), type_)
        else:
            span.set_attribute("podium.attempt.state", "SUCCEEDED")
            log.info("%s: succeeded", _described(task))
            self.outbox.put_nowait(
                worker_service_pb2.ConnectRequest(
                    complete=worker_service_pb2.CompleteAttempt(attempt_token=token, output=value)
                )
            )
        finally:
            span.end()
            self.running.pop(token, None)

    def _send_fail(self, token: str, type_: str, message: str, retryable: bool) -> None:
        self.outbox.put_nowait(
            worker_service_pb2.ConnectRequest(
                fail=worker_service_pb2.FailAttempt(
                    attempt_token=token,
                    failure=common_pb2.Failure(type=type_, message=message, retryable=retryable),
                )
            )
        )

    async def _heartbeats(self) -> None:
        while True:
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.heartbeat_timeout / 3)
            self.outbox.put_nowait(
                worker_service_pb2.ConnectRequest(
                    heartbeat=worker_service_pb2.Heartbeat(attempt_tokens=list(self.running))
                )
            )


_propagator = TraceContextTextMapPropagator()


def _attempt_span(tracer: trace.Tracer, task: worker_service_pb2.AttemptTask) -> trace.Span:
    """The worker's span of an attempt: `invoke_agent {agent}` (GenAI
    conventions), a child of the server's attempt span named by the task."""
    parent = _propagator.extract({"traceparent": task.traceparent}) if task.traceparent else None
    attributes: dict[str, str | int] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": task.agent,
        "podium.run.id": task.run.removeprefix("runs/"),
        "podium.step.id": task.step_id,
        "podium.attempt": task.attempt,
    }
    if task.item >= 0:
        attributes["podium.item"] = task.item
    return tracer.start_span(
        f"invoke_agent {task.agent}",
        context=parent,
        kind=trace.SpanKind.INTERNAL,
        attributes=attributes,
    )


def _failed(span: trace.Span, type_: str, message: str) -> None:
    span.set_attribute("podium.attempt.state", "FAILED")
    span.set_attribute("error.type", type_)
    span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type_}: {message}"[:500]))


def _described(task: worker_service_pb2.AttemptTask) -> str:
    item = f"[{task.item}]" if task.item >= 0 else ""
    return f"{task.run}/{task.step_id}{item} attempt {task.attempt} ({task.agent})"


class _NotJson(ValueError):
    pass


def _value(output: Any) -> struct_pb2.Value:
    message = struct_pb2.Value()
    try:
        json_format.ParseDict(_jsonable(output), message)
    except (json_format.ParseError, TypeError, ValueError) as error:
        raise _NotJson(f"agent output is not JSON-compatible: {error}") from None
    return message


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            str(k) if isinstance(k, str) else _bad_key(k): _jsonable(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"{type(value).__name__} is not JSON")


def _bad_key(key: Any) -> str:
    raise TypeError(f"object key {key!r} is not a string")
