"""Flow control for one channel: a bound on calls in flight, and retries of
the calls that are safe to repeat.

Past a few thousand concurrent calls on one channel, grpcio itself starts
failing calls with CANCELLED (a bare grpc.aio echo server does it too), and a
server shedding load answers RESOURCE_EXHAUSTED or UNAVAILABLE. Queueing the
excess in the client and retrying what may be retried turns a burst into a
slower burst instead of errors. StartRun is safe to retry because the client
always sends a request_id: a retry of a run that did start returns that run.

The same policy paces the blocking Client (threads share its channel) and the
AsyncClient (tasks share theirs).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

__all__ = ["AsyncFlowControl", "BlockingFlowControl", "FlowPolicy", "server_retry_delay"]

# Methods whose repetition changes nothing: reads, and StartRun (request_id).
RETRYABLE_METHODS = frozenset(
    {
        "/podium.v1.ExecutionService/StartRun",
        "/podium.v1.ExecutionService/GetRun",
        "/podium.v1.ExecutionService/ListRuns",
        "/podium.v1.WorkflowService/GetWorkflow",
        "/podium.v1.WorkflowService/ListWorkflows",
        "/podium.v1.ScheduleService/GetSchedule",
        "/podium.v1.ScheduleService/ListSchedules",
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
# Where gRPC carries the google.rpc.Status with its typed details.
_STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FlowPolicy:
    """How a client paces its unary calls.

    `max_in_flight` calls run at once on the channel, the rest wait their
    turn. A retryable call that fails with CANCELLED, UNAVAILABLE or
    RESOURCE_EXHAUSTED is tried up to `max_attempts` times in all, after a
    full-jitter exponential backoff from `initial_backoff` to `max_backoff`
    seconds. A server shedding load says when to come back
    (google.rpc.RetryInfo): the call then waits that long plus the jittered
    backoff, up to `max_pushbacks` times, which do not count as attempts (a
    burst may be pushed back many times while the server drains it)."""

    max_in_flight: int = 1000
    max_attempts: int = 6
    initial_backoff: float = 0.05
    max_backoff: float = 2.0
    max_pushbacks: int = 100

    def __post_init__(self) -> None:
        if self.max_in_flight < 1 or self.max_attempts < 1:
            raise ValueError("max_in_flight and max_attempts must be at least 1")
        if self.max_pushbacks < 0:
            raise ValueError("max_pushbacks must not be negative")

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1, 2, ...)."""
        ceiling = min(self.max_backoff, self.initial_backoff * 2 ** (retry - 1))
        return random.uniform(0, ceiling)

    def retry_delay(self, method: str | bytes, error: grpc.RpcError, tries: _Tries) -> float | None:
        """Seconds to wait before trying the failed call again, or None to
        give up; `tries` counts the call's failures so far and is updated."""
        if isinstance(method, bytes):
            method = method.decode()
        code = error.code() if callable(getattr(error, "code", None)) else None
        if method not in RETRYABLE_METHODS or code not in RETRYABLE_CODES:
            return None
        asked = server_retry_delay(error)
        if asked is None:
            tries.failures += 1
            if tries.failures >= self.max_attempts:
                return None
            return self.backoff(tries.failures)
        tries.pushbacks += 1
        if tries.pushbacks > self.max_pushbacks:
            return None
        # Jitter on top, so the clients told the same delay do not all come
        # back at the same instant.
        return asked + self.backoff(tries.pushbacks)


@dataclass
class _Tries:
    """One call's failures so far: those the server gave a retry delay for
    (pushbacks) and the others."""

    failures: int = 0
    pushbacks: int = 0


def server_retry_delay(error: grpc.RpcError) -> float | None:
    """The delay in the google.rpc.RetryInfo of a failed call's status, if any."""
    trailing = getattr(error, "trailing_metadata", None)
    for key, value in (trailing() if callable(trailing) else None) or ():
        if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            return None
        for detail in status.details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                seconds: float = info.retry_delay.ToTimedelta().total_seconds()
                return max(0.0, seconds)
    return None


class AsyncFlowControl(grpc.aio.UnaryUnaryClientInterceptor):
    """The FlowPolicy as a grpc.aio channel interceptor (unary calls only:
    watch streams are long-lived and reconnect on their own)."""

    def __init__(self, policy: FlowPolicy) -> None:
        self.policy = policy
        self._slots = asyncio.Semaphore(policy.max_in_flight)

    async def intercept_unary_unary(
        self,
        continuation: Callable[[Any, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        tries = _Tries()
        while True:
            async with self._slots:
                call = await continuation(client_call_details, request)
                try:
                    return await call
                except grpc.aio.AioRpcError as error:
                    delay = self.policy.retry_delay(client_call_details.method, error, tries)
                    if delay is None:
                        raise
            await asyncio.sleep(delay)


class BlockingFlowControl(grpc.UnaryUnaryClientInterceptor):
    """The FlowPolicy as a blocking channel interceptor: the threads sharing
    a Client share its bound on calls in flight."""

    def __init__(self, policy: FlowPolicy) -> None:
        self.policy = policy
        self._slots = threading.BoundedSemaphore(policy.max_in_flight)

    def intercept_unary_unary(
        self,
        continuation: Callable[[Any, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        tries = _Tries()
        while True:
            with self._slots:
                # A failed call comes back as an outcome whose exception()
                # is the RpcError; the channel raises it to the caller.
                outcome = continuation(client_call_details, request)
                error = outcome.exception()
            if error is None:
                return outcome
            delay = self.policy.retry_delay(client_call_details.method, error, tries)
            if delay is None:
                return outcome
            time.sleep(delay)
