"""A local HTTP endpoint for tests of outbound calls (`http` steps,
completion notifications): a real server on 127.0.0.1 (an ephemeral port)
that records every request and answers with scripted responses, then with
a default one (200, JSON echoing the request)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["HttpEndpoint", "Reply", "Request", "http_endpoint"]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes | None = None  # None: JSON echoing the request
    content_type: str = "application/json"


class HttpEndpoint:
    def __init__(self, server: http.server.ThreadingHTTPServer) -> None:
        self._server = server
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self.replies: list[Reply] = []

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def script(self, *replies: Reply) -> None:
        """Answers the next requests with these, in order."""
        with self._lock:
            self.replies.extend(replies)

    def _handle(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self.replies.pop(0) if self.replies else Reply()


@contextmanager
def http_endpoint() -> Iterator[HttpEndpoint]:
    endpoint: HttpEndpoint

    class Handler(http.server.BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(self.command, self.path, dict(self.headers.items()), body)
            reply = endpoint._handle(request)
            payload = reply.body
            if payload is None:
                echoed = {
                    "method": request.method,
                    "path": request.path,
                    "headers": request.headers,
                    "body": body.decode(errors="replace"),
                }
                payload = json.dumps(echoed).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint = HttpEndpoint(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
