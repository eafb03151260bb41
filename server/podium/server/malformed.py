"""Bytes that do not parse as the request message: INVALID_ARGUMENT with
ErrorInfo reason MALFORMED_REQUEST, where grpc would answer UNKNOWN.

grpc calls the request deserializer itself and maps anything it raises to
UNKNOWN before a handler runs. This interceptor wraps each method's
deserializer so a parse failure becomes a marker, and its behaviour so the
marker is answered with a rich status instead of reaching the servicer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, cast

import grpc
from google.protobuf.message import DecodeError
from grpc_status import rpc_status

from podium.server.status import invalid, to_status

# Generic only in the type stubs: quoted, so nothing subscripts it at run time.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]"


StreamingBehaviour = Callable[..., AsyncIterator[Any]]


class _Malformed:
    """What the deserializer returns for bytes that are not the request."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


async def _abort(request: _Malformed, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    error = invalid("request", f"not a valid message: {request.error}", "MALFORMED_REQUEST")
    await context.abort_with_status(rpc_status.to_status(to_status(error)))


class MalformedRequests(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        parse = getattr(handler, "request_deserializer", None)
        if handler is None or parse is None:
            return handler
        if handler.unary_unary is not None:
            return handler._replace(  # type: ignore[attr-defined, no-any-return]
                request_deserializer=_tolerant(parse),
                unary_unary=_unary(handler.unary_unary),
            )
        if handler.unary_stream is not None:
            return handler._replace(  # type: ignore[attr-defined, no-any-return]
                request_deserializer=_tolerant(parse),
                # An aio server's streaming behaviours are async generators.
                unary_stream=_streaming(cast(StreamingBehaviour, handler.unary_stream)),
            )
        return handler  # no client-streaming RPCs in Podium's API


def _tolerant(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except (DecodeError, RecursionError, ValueError) as error:
            return _Malformed(str(error) or type(error).__name__)

    return deserialize


def _unary(behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if isinstance(request, _Malformed):
            await _abort(request, context)
        return await behaviour(request, context)

    return handle


def _streaming(behaviour: StreamingBehaviour) -> StreamingBehaviour:
    async def handle(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        if isinstance(request, _Malformed):
            await _abort(request, context)
            return
        async for response in behaviour(request, context):
            yield response

    return handle
