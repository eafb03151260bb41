"""Load shedding: past a bound on unary calls in flight, a new one is
answered RESOURCE_EXHAUSTED (reason OVERLOADED) with a google.rpc.RetryInfo
delay, at once and without running, instead of queueing without limit.

What is counted and shed are unary calls of Podium's own services: health
checks and reflection are always answered (an orchestrator probing an
overloaded server must not conclude it is dead), and streams (WatchRun) are
long-lived, so they neither count nor get shed once open; a client waits the
delay and retries (both Python clients do, for the calls safe to repeat).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from grpc_status import rpc_status

from podium.core.errors import ResourceExhausted
from podium.server.status import to_status

__all__ = ["DEFAULT_RETRY_AFTER", "LoadShedder"]

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]"

# What a shed call is told to wait before retrying: a few StartRuns' time, so
# a retry finds room, short enough not to idle a server that drains fast
# (clients add their own jitter on top).
DEFAULT_RETRY_AFTER = 0.1
# Services never shed: the health of an overloaded server is still its health.
_EXEMPT_PREFIXES = ("/grpc.health.", "/grpc.reflection.")


class LoadShedder(grpc.aio.ServerInterceptor):
    """Counts the unary calls being handled and sheds those past `limit`."""

    def __init__(self, limit: int, retry_after: float = DEFAULT_RETRY_AFTER) -> None:
        if limit < 1:
            raise ValueError("the limit of calls in flight must be at least 1")
        self.limit = limit
        self.retry_after = retry_after
        self.in_flight = 0
        # Calls shed since the server started (for logs, tests and benchmarks).
        self.shed = 0

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        if isinstance(method, bytes):
            method = method.decode()
        if method.startswith(_EXEMPT_PREFIXES):
            return handler
        return handler._replace(  # type: ignore[attr-defined, no-any-return]
            unary_unary=self._guard(handler.unary_unary)
        )

    def _guard(self, behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if self.in_flight >= self.limit:
                self.shed += 1
                error = ResourceExhausted(
                    f"the server is handling {self.in_flight} calls, its limit"
                    " (max_calls_in_flight); retry later",
                    reason="OVERLOADED",
                    retry_after=self.retry_after,
                )
                await context.abort_with_status(rpc_status.to_status(to_status(error)))
            self.in_flight += 1
            try:
                return await behaviour(request, context)
            finally:
                self.in_flight -= 1

        return handle
