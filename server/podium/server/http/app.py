"""The HTTP server's ASGI application: one Connect application per service (the gRPC
handlers behind them, see grpc_bridge.py), the web console's assets at `/`, and CORS for
the origins the operator allows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from connectrpc.codec import Codec
from connectrpc.compat import google_protobuf_binary_codec, google_protobuf_json_codec
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from podium.server.http.grpc_bridge import BridgedService, Handler, connect_error
from podium.server.status import invalid, to_status
from podium.v1 import (
    control_service_connect,
    execution_service_connect,
    identity_service_connect,
    progress_service_connect,
    workflow_service_connect,
)

# Where `make console` builds the console (package data of the podium wheel).
CONSOLE_ASSETS = Path(__file__).parent / "static"

# What a browser may send and read cross-origin: Connect's and gRPC-Web's own headers, the
# bearer token and the admin's tenant override.
ALLOWED_HEADERS = (
    "authorization",
    "content-type",
    "connect-protocol-version",
    "connect-timeout-ms",
    "connect-accept-encoding",
    "connect-content-encoding",
    "grpc-timeout",
    "x-grpc-web",
    "x-user-agent",
    "x-podium-tenant",
    "x-request-id",
    "traceparent",
)
EXPOSED_HEADERS = ("grpc-status", "grpc-message", "grpc-status-details-bin")

# Every service but WorkerService, whose bidirectional session needs gRPC (HTTP/2).
_APPLICATIONS: Sequence[tuple[str, Any]] = (
    ("podium.v1.WorkflowService", workflow_service_connect.WorkflowServiceASGIApplication),
    ("podium.v1.ExecutionService", execution_service_connect.ExecutionServiceASGIApplication),
    ("podium.v1.ProgressService", progress_service_connect.ProgressServiceASGIApplication),
    ("podium.v1.ControlService", control_service_connect.ControlServiceASGIApplication),
    ("podium.v1.IdentityService", identity_service_connect.IdentityServiceASGIApplication),
)
SERVICE_NAMES = tuple(name for name, _ in _APPLICATIONS)


class _RequestCodec:
    """A codec whose undecodable request is INVALID_ARGUMENT with ErrorInfo reason
    MALFORMED_REQUEST and a BadRequest, as over gRPC (server/malformed.py)."""

    def __init__(self, codec: Codec) -> None:
        self._codec = codec

    def name(self) -> str:
        return self._codec.name()

    def encode(self, message: Any) -> bytes:
        return self._codec.encode(message)

    def decode(self, data: bytes | bytearray, message_class: type[Any]) -> Any:
        try:
            return self._codec.decode(data, message_class)
        except Exception as error:
            text = str(error) or type(error).__name__
            problem = invalid("request", f"not a valid message: {text}", "MALFORMED_REQUEST")
            raise connect_error(to_status(problem)) from None


_CODECS: list[Codec] = [
    _RequestCodec(google_protobuf_binary_codec()),
    _RequestCodec(google_protobuf_json_codec(ignore_unknown_fields=False)),
]


def build_application(
    handlers: Mapping[str, Handler],
    *,
    cors_origins: Sequence[str] = (),
    console: Path | None = CONSOLE_ASSETS,
    read_max_bytes: int | None = None,
) -> Starlette:
    """The ASGI application. `handlers`: the intercepted gRPC handlers by method path;
    `console`: the built console's directory (served at `/` when it holds an index.html)."""
    routes: list[Any] = []
    for name, application in _APPLICATIONS:
        service = BridgedService(name, handlers)
        kwargs: dict[str, Any] = {"codecs": _CODECS}
        if read_max_bytes is not None:
            kwargs["read_max_bytes"] = read_max_bytes
        routes.append(Mount(f"/{name}", app=application(service, **kwargs)))
    if console is not None and (console / "index.html").is_file():
        routes.append(Mount("/", app=StaticFiles(directory=console, html=True)))
    else:
        routes.append(Route("/", _no_console))
    middleware = []
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=list(ALLOWED_HEADERS),
                expose_headers=list(EXPOSED_HEADERS),
                max_age=7200,
            )
        )
    return Starlette(routes=routes, middleware=middleware)


async def _no_console(request: Request) -> Response:
    return PlainTextResponse(
        "The web console is not built in this installation (`make console`); the HTTP API"
        f" serves {', '.join(SERVICE_NAMES)}.\n",
        status_code=404,
    )


__all__ = ["ALLOWED_HEADERS", "CONSOLE_ASSETS", "SERVICE_NAMES", "build_application"]
