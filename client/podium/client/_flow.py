"""Flow control for one channel: a bound on calls in flight, and retries of
the calls that are safe to repeat.

Past a few thousand concurrent calls on one channel, grpcio itself starts
failing calls with CANCELLED (a bare grpc.aio echo server does it too), and a
server shedding load answers RESOURCE_EXHAUSTED or UNAVAILABLE. Queueing the
excess in the client and retrying what may be retried turns a burst into a
slower burst instead of errors. StartRun is safe to retry because the client
always sends a request_id: a retry of a run that did start returns that run.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

__all__ = ["FlowPolicy"]

# Methods whose repetition changes nothing: reads, and StartRun (request_id).
RETRYABLE_METHODS = frozenset(
    {
        "/podium.v1.ExecutionService/StartRun",
        "/podium.v1.ExecutionService/GetRun",
        "/podium.v1.ExecutionService/ListRuns",
        "/podium.v1.WorkflowService/GetWorkflow",
        "/podium.v1.WorkflowService/ListWorkflows",
        "/podium.v1.WorkflowService/ValidateWorkflow",
    }
)
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


@dataclass(frozen=True)
class FlowPolicy:
    """How an AsyncClient paces its unary calls.

    `max_in_flight` calls run at once on the channel, the rest wait their
    turn; a retryable call that fails with CANCELLED, UNAVAILABLE or
    RESOURCE_EXHAUSTED is tried up to `max_attempts` times in all, after a
    full-jitter exponential backoff from `initial_backoff` to `max_backoff`
    seconds."""

    max_in_flight: int = 1000
    max_attempts: int = 6
    initial_backoff: float = 0.05
    max_backoff: float = 2.0

    def __post_init__(self) -> None:
        if self.max_in_flight < 1 or self.max_attempts < 1:
            raise ValueError("max_in_flight and max_attempts must be at least 1")

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1, 2, ...)."""
        ceiling = min(self.max_backoff, self.initial_backoff * 2 ** (retry - 1))
        return random.uniform(0, ceiling)


class FlowControl(grpc.aio.UnaryUnaryClientInterceptor):
    """The FlowPolicy as a channel interceptor (unary calls only: watch
    streams are long-lived and reconnect on their own)."""

    def __init__(self, policy: FlowPolicy) -> None:
        self.policy = policy
        self._slots = asyncio.Semaphore(policy.max_in_flight)

    async def intercept_unary_unary(
        self,
        continuation: Callable[[Any, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        method = client_call_details.method
        if isinstance(method, bytes):
            method = method.decode()
        retryable = method in RETRYABLE_METHODS
        attempt = 1
        while True:
            async with self._slots:
                call = await continuation(client_call_details, request)
                try:
                    return await call
                except grpc.aio.AioRpcError as error:
                    if (
                        not retryable
                        or error.code() not in RETRYABLE_CODES
                        or attempt >= self.policy.max_attempts
                    ):
                        raise
            await asyncio.sleep(self.policy.backoff(attempt))
            attempt += 1
