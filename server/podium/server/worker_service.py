"""WorkerService: translation only. A worker's session stream feeds what the
worker says into the engine's WorkerPool and carries what the pool sends
(tasks, cancels, rejections) back; governed calls are the attempt's own
`ctx.llm` and `ctx.call_tool`, found by the attempt's token."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import Any

import grpc

from podium.core.errors import FailedPrecondition, InvalidArgument, Unavailable
from podium.core.failures import INTERNAL, INVALID_OUTPUT, Failure, failure_from_exception
from podium.engine.relay import RelayedContext, TaskRelay
from podium.engine.workers import RemoteTask, WorkerPool, WorkerSession
from podium.identity.principal import Principal
from podium.plugins.api import CompletionRequest, StepContext, Target
from podium.server import translate
from podium.server import worker_translate as wt
from podium.server.caller import current_caller
from podium.server.status import invalid, streaming, unary
from podium.v1 import worker_service_pb2 as pb
from podium.v1 import worker_service_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
# Kinds of governed calls relayed to a run's owner (cluster mode).
MODEL, TOOL = "model", "tool"
_NOT_CARRIED_OUT = Failure(
    INTERNAL, "the server that owns the run could not carry out the call", retryable=True
)
log = logging.getLogger("podium.server")

_CLOSED = object()  # the server ends the session (shutdown)
_ENDED = object()  # the worker ended the session (or broke the protocol)


class StreamLink:
    """Implements engine.workers.WorkerLink over one Connect stream."""

    __slots__ = ("_outbox",)

    def __init__(self) -> None:
        self._outbox: asyncio.Queue[object] = asyncio.Queue()

    def send_task(self, task: RemoteTask) -> None:
        self._outbox.put_nowait(task)

    def send_cancel(self, token: str, reason: str) -> None:
        self._outbox.put_nowait(
            pb.ConnectResponse(cancel=pb.CancelAttempt(attempt_token=token, reason=reason))
        )

    def send_rejected(self, token: str, reason: str) -> None:
        self._outbox.put_nowait(
            pb.ConnectResponse(rejected=pb.MessageRejected(attempt_token=token, reason=reason))
        )

    def close(self) -> None:
        self._outbox.put_nowait(_CLOSED)

    def ended(self) -> None:
        self._outbox.put_nowait(_ENDED)

    async def next(self) -> object:
        return await self._outbox.get()


class WorkerService(worker_service_pb2_grpc.WorkerServiceServicer):
    def __init__(self, workers: WorkerPool, relay: TaskRelay | None = None) -> None:
        """`relay` (cluster mode): the governed calls of this server's attempts run by
        workers connected to other servers arrive through it, carried out here."""
        self._workers = workers
        if relay is not None:
            relay.serve_calls(self._relayed_call)

    @streaming
    async def Connect(
        self, request_iterator: AsyncIterable[pb.ConnectRequest], context: Context
    ) -> AsyncIterator[pb.ConnectResponse]:
        requests = aiter(request_iterator)
        try:
            first = await anext(requests)
        except StopAsyncIteration:
            return
        if first.WhichOneof("message") != "open":
            raise invalid("open", "the first message of a session must be open")
        opening = wt.opening(first.open)
        link = StreamLink()
        session = self._workers.open(
            identity=opening.identity,
            sdk=opening.sdk,
            queues=opening.queues,
            agents=opening.agents,
            capacity=opening.capacity,
            link=link,
            tenant=_session_tenant(current_caller()),
        )
        if session is None:
            raise Unavailable("the server is shutting down", reason="SHUTTING_DOWN")
        problem: list[InvalidArgument] = []
        reader = asyncio.create_task(self._read(requests, session, link, problem))
        try:
            yield pb.ConnectResponse(opened=pb.SessionOpened(session_id=session.id))
            while True:
                item = await link.next()
                if item is _CLOSED:
                    raise Unavailable("the server is shutting down", reason="SHUTTING_DOWN")
                if item is _ENDED:
                    if problem:
                        raise problem[0]
                    return
                if isinstance(item, RemoteTask):
                    yield wt.task_message(item)
                else:
                    assert isinstance(item, pb.ConnectResponse)
                    yield item
        finally:
            reader.cancel()
            self._workers.close(session)

    async def _read(
        self,
        requests: AsyncIterator[pb.ConnectRequest],
        session: WorkerSession,
        link: StreamLink,
        problem: list[InvalidArgument],
    ) -> None:
        workers = self._workers
        try:
            async for message in requests:
                kind = message.WhichOneof("message")
                if kind == "heartbeat":
                    workers.heartbeat(session, message.heartbeat.attempt_tokens)
                elif kind == "progress":
                    report = message.progress
                    workers.progress(
                        session,
                        report.attempt_token,
                        report.progress,
                        report.message[: wt.MAX_PROGRESS_MESSAGE],
                    )
                elif kind == "complete":
                    token = message.complete.attempt_token
                    try:
                        output = wt.output_value(message.complete)
                    except InvalidArgument as error:
                        failure = Failure(INVALID_OUTPUT, error.message, retryable=False)
                        workers.fail(session, token, failure)
                    else:
                        workers.complete(session, token, output)
                elif kind == "fail":
                    workers.fail(
                        session, message.fail.attempt_token, wt.failure_value(message.fail)
                    )
                else:
                    problem.append(
                        invalid("open", "a session is opened once, by its first message")
                    )
                    return
        except grpc.aio.AioRpcError:
            pass  # the worker went away
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker session %s failed", session.id)
        finally:
            link.ended()

    @unary
    async def CallModel(
        self, request: pb.CallModelRequest, context: Context
    ) -> pb.CallModelResponse:
        ctx = self._running(request.attempt_token)
        completion_request = wt.completion_request(request.request)
        fallbacks = wt.targets(request.fallbacks)
        if isinstance(ctx, RelayedContext):
            answer = await ctx.relay_call(MODEL, request.SerializeToString())
            if not answer:
                return pb.CallModelResponse(failure=translate.failure(_NOT_CARRIED_OUT))
            return pb.CallModelResponse.FromString(answer)
        return await self._call_model(ctx, request.provider, completion_request, fallbacks)

    async def _call_model(
        self,
        ctx: StepContext,
        provider: str,
        completion_request: CompletionRequest,
        fallbacks: Sequence[Target],
    ) -> pb.CallModelResponse:
        try:
            result = await ctx.llm.complete(provider, completion_request, fallbacks=fallbacks)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            return pb.CallModelResponse(failure=translate.failure(failure_from_exception(error)))
        return wt.result_message(result)

    @unary
    async def CallTool(self, request: pb.CallToolRequest, context: Context) -> pb.CallToolResponse:
        ctx = self._running(request.attempt_token)
        arguments = wt.arguments(request)
        if isinstance(ctx, RelayedContext):
            answer = await ctx.relay_call(TOOL, request.SerializeToString())
            if not answer:
                return pb.CallToolResponse(failure=translate.failure(_NOT_CARRIED_OUT))
            return pb.CallToolResponse.FromString(answer)
        return await self._call_tool(ctx, request.name, arguments)

    async def _call_tool(
        self, ctx: StepContext, name: str, arguments: dict[str, Any]
    ) -> pb.CallToolResponse:
        try:
            output = await ctx.call_tool(name, arguments)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            return pb.CallToolResponse(failure=translate.failure(failure_from_exception(error)))
        return pb.CallToolResponse(output=wt.tool_output(output))

    def _running(self, token: str) -> StepContext:
        ctx = self._workers.context(token) if token else None
        if ctx is None:
            raise FailedPrecondition(
                "attempt_token: not the token of a running attempt",
                reason="ATTEMPT_NOT_RUNNING",
            )
        return ctx

    async def _relayed_call(self, ctx: StepContext, kind: str, request: bytes) -> bytes:
        """Carries out a governed call that a worker connected to another server made
        for an attempt of a run owned here, on the attempt's own context."""
        if kind == MODEL:
            model = pb.CallModelRequest.FromString(request)
            response: pb.CallModelResponse | pb.CallToolResponse = await self._call_model(
                ctx,
                model.provider,
                wt.completion_request(model.request),
                wt.targets(model.fallbacks),
            )
        elif kind == TOOL:
            tool = pb.CallToolRequest.FromString(request)
            response = await self._call_tool(ctx, tool.name, wt.arguments(tool))
        else:
            raise ValueError(f"unknown relayed call {kind!r}")
        return response.SerializeToString()


def _session_tenant(caller: Principal) -> str | None:
    """The tenant whose tasks a worker's session receives: its credential's; every
    tenant's for an admin (the unauthenticated caller is one) unless it names one
    explicitly (x-podium-tenant)."""
    if caller.is_admin and not caller.acting_for:
        return None
    return caller.tenant
