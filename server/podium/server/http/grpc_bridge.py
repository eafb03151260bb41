"""Serves Connect requests with the grpc.aio server's own method handlers.

Each RPC's handler is the servicer method wrapped by the same interceptors that the gRPC
transport runs (load shedding, identity: authentication, the access table, rate limits and
audit; malformed requests): `handlers()` collects them exactly as `grpc.aio.Server` would
and applies the interceptors in the same order. A Connect endpoint then calls that handler
with a `BridgedContext`, the part of `grpc.aio.ServicerContext` that Podium's handlers use
(request metadata, aborting with a rich status, the status code for the audit record). An
abort becomes a `ConnectError` with the same code, message and google.rpc details
(ErrorInfo, BadRequest, RetryInfo, ResourceInfo). No RPC is implemented twice."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, NoReturn, TypeAlias, cast

import grpc
from connectrpc.code import Code
from connectrpc.errors import ConnectError, ErrorDetail
from connectrpc.request import RequestContext
from google.rpc import status_pb2
from protobuf.wkt import Any as AnyDetail

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
# The trailing metadata key under which grpc_status carries the google.rpc.Status.
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
# HTTP headers that are transport, not call metadata (grpc never shows them to handlers).
_NOT_METADATA = frozenset(
    {"content-type", "content-length", "content-encoding", "accept-encoding", "connection"}
)


class HandlerCollector:
    """Stands in for a grpc.aio.Server in the generated `add_*Servicer_to_server` functions
    (and `add_progress_service`): keeps each method's handler by its full path."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}

    def add_generic_rpc_handlers(self, generic_handlers: Iterable[object]) -> None:
        """The same handlers are also given by service below; nothing more to keep."""

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, Handler]
    ) -> None:
        for name, handler in method_handlers.items():
            self.handlers[f"/{service_name}/{name}"] = handler


class _CallDetails(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


async def intercepted(
    handlers: Mapping[str, Handler], interceptors: Iterable[grpc.aio.ServerInterceptor]
) -> dict[str, Handler]:
    """Each handler wrapped by the interceptors, the first outermost, as grpc.aio does. The
    interceptors Podium uses decide by the method alone, so this is done once at start."""
    chain = list(interceptors)
    result: dict[str, Handler] = {}
    for method, handler in handlers.items():

        async def innermost(details: grpc.HandlerCallDetails, h: Handler = handler) -> Handler:
            return h

        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]] = innermost
        for interceptor in reversed(chain):
            continuation = _link(interceptor, continuation)
        wrapped = await continuation(_CallDetails(method))
        if wrapped is not None:
            result[method] = wrapped
    return result


def _link(
    interceptor: grpc.aio.ServerInterceptor,
    continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
) -> Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]:
    async def call(details: grpc.HandlerCallDetails) -> Handler | None:
        return await interceptor.intercept_service(continuation, details)

    return call


class BridgedContext:
    """What Podium's handlers and interceptors use of grpc.aio.ServicerContext, for a call
    that came over HTTP. Metadata are the request's headers (lower-case names), so
    `authorization: Bearer ...`, `x-podium-tenant` and `traceparent` mean what they mean
    over gRPC. Client certificates are not read over HTTP: a caller presents a token."""

    def __init__(self, headers: Iterable[tuple[str, str]]) -> None:
        self._metadata = tuple(
            (key.lower(), value) for key, value in headers if key.lower() not in _NOT_METADATA
        )
        self._code: grpc.StatusCode | None = None
        self.status: status_pb2.Status | None = None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def peer(self) -> str:
        return "http"

    def code(self) -> grpc.StatusCode | None:
        return self._code

    async def abort_with_status(self, status: grpc.Status) -> NoReturn:
        self._code = status.code
        for key, value in status.trailing_metadata or ():
            if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
                self.status = status_pb2.Status.FromString(value)
        if self.status is None:
            self.status = status_pb2.Status(code=status.code.value[0], message=status.details)
        raise grpc.aio.AbortError()

    async def abort(self, code: grpc.StatusCode, details: str = "") -> NoReturn:
        self._code = code
        self.status = status_pb2.Status(code=code.value[0], message=details)
        raise grpc.aio.AbortError()

    def error(self) -> ConnectError:
        """The ConnectError of the status the handler aborted with."""
        status = self.status or status_pb2.Status(code=2, message="aborted")
        return connect_error(status)


def connect_error(status: status_pb2.Status) -> ConnectError:
    """A google.rpc.Status as a ConnectError: same code, message and details."""
    details = [ErrorDetail(AnyDetail(type_url=d.type_url, value=d.value)) for d in status.details]
    return ConnectError(connect_code(status.code), status.message, details)


def connect_code(code: int) -> Code:
    """A gRPC status code's Connect code (the same sixteen, one spelt differently)."""
    if code == grpc.StatusCode.CANCELLED.value[0]:
        return Code.CANCELED
    for status in grpc.StatusCode:
        if status.value[0] == code and status.name in Code.__members__:
            return Code[status.name]
    return Code.UNKNOWN


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class BridgedService:
    """The object a generated Connect ASGI application calls (`svc.start_run(request, ctx)`):
    each attribute calls the gRPC handler of that method."""

    def __init__(self, service_name: str, handlers: Mapping[str, Handler]) -> None:
        prefix = f"/{service_name}/"
        self._endpoints: dict[str, Callable[..., Any]] = {}
        for path, handler in handlers.items():
            if not path.startswith(prefix):
                continue
            name = _snake(path.removeprefix(prefix))
            if handler.unary_unary is not None:
                self._endpoints[name] = _unary(handler.unary_unary)
            elif handler.unary_stream is not None:
                self._endpoints[name] = _server_stream(
                    cast(Callable[[Any, Any], AsyncIterator[Any]], handler.unary_stream)
                )
            # Client and bidirectional streams (WorkerService) stay on gRPC.

    def __getattr__(self, name: str) -> Callable[..., Any]:
        try:
            return self._endpoints[name]
        except KeyError:
            raise AttributeError(name) from None


def _unary(
    behaviour: Callable[[Any, Any], Awaitable[Any]],
) -> Callable[[Any, RequestContext[Any, Any]], Awaitable[Any]]:
    async def call(request: Any, ctx: RequestContext[Any, Any]) -> Any:
        context = BridgedContext(ctx.request_headers.allitems())
        try:
            return await behaviour(request, context)
        except grpc.aio.AbortError:
            raise context.error() from None

    return call


def _server_stream(
    behaviour: Callable[[Any, Any], AsyncIterator[Any]],
) -> Callable[[Any, RequestContext[Any, Any]], AsyncIterator[Any]]:
    async def call(request: Any, ctx: RequestContext[Any, Any]) -> AsyncIterator[Any]:
        context = BridgedContext(ctx.request_headers.allitems())
        output = cast(Any, ctx.method.output)
        try:
            async for response in behaviour(request, context):
                # ProgressService yields its events pre-encoded (event_encoding.py).
                yield output.FromString(response) if isinstance(response, bytes) else response
        except grpc.aio.AbortError:
            raise context.error() from None

    return call
