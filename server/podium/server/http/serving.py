"""The HTTP server: hypercorn in the grpc.aio server's process and event loop, HTTP/1.1
and HTTP/2 (h2c, or h2 over TLS), on a socket bound before it starts so that port 0 works
and a taken port fails at start like the gRPC one."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from podium.server.security import TlsFiles

if TYPE_CHECKING:
    from starlette.applications import Starlette

log = logging.getLogger("podium.server")


@dataclass(frozen=True)
class HttpSettings:
    """`podium serve --http-address` and `--http-cors-origin`."""

    address: str
    cors_origins: tuple[str, ...] = ()


class HttpServer:
    def __init__(self, task: asyncio.Task[None], stop: asyncio.Event, port: int) -> None:
        self._task = task
        self._stop = stop
        self.port = port

    async def stop(self, grace: float) -> None:
        """Stops accepting, lets calls in flight finish for `grace` seconds, then ends."""
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace + 1)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()
        except Exception:
            log.warning("the HTTP server ended with an error", exc_info=True)


def bind(address: str) -> socket.socket:
    """A listening socket on `address` (host:port; [v6]:port); OSError when taken."""
    host, _, port_text = address.rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise OSError(f"cannot listen on {address}: not HOST:PORT") from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as error:
        sock.close()
        raise OSError(f"cannot listen on {address} (HTTP): {error.strerror or error}") from None
    sock.setblocking(False)
    return sock


async def start_http(
    application: Starlette, settings: HttpSettings, tls: TlsFiles | None, grace: float = 10.0
) -> HttpServer:
    # Hypercorn, h2 and wsproto (several MB) load with the first HTTP server:
    # the HTTP API is off by default.
    from hypercorn.asyncio.run import worker_serve
    from hypercorn.config import Config, Sockets
    from hypercorn.utils import wrap_app

    sock = bind(settings.address)
    port = int(sock.getsockname()[1])
    config = Config()
    config.graceful_timeout = grace
    config.accesslog = None
    config.errorlog = logging.getLogger("podium.http")
    config.keep_alive_timeout = 75
    if tls is not None:
        config.certfile = tls.cert
        config.keyfile = tls.key
        if tls.client_ca is not None:
            # As over gRPC, the TLS layer requires a client certificate; the caller still
            # presents a token (certificates are not read as credentials over HTTP).
            config.ca_certs = tls.client_ca
            config.verify_mode = ssl.CERT_REQUIRED
        sockets = Sockets(secure_sockets=[sock], insecure_sockets=[], quic_sockets=[])
    else:
        sockets = Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])
    stop = asyncio.Event()
    task = asyncio.create_task(
        worker_serve(
            wrap_app(cast(Any, application), config.wsgi_max_body_size, "asgi"),
            config,
            sockets=sockets,
            shutdown_trigger=stop.wait,
        ),
        name="podium-http",
    )
    # Hypercorn reports its listening only through its log; the socket already listens.
    await asyncio.sleep(0)
    scheme = "https" if tls is not None else "http"
    log.info("HTTP API and console on %s://%s", scheme, _display(settings.address, port))
    return HttpServer(task, stop, port)


def _display(address: str, port: int) -> str:
    host = address.rpartition(":")[0]
    return f"{host}:{port}"
