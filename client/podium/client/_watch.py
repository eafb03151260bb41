"""Resuming a WatchRun stream: which events are new, when to reconnect, how long to wait.

Shared by the sync and async clients, which only differ in how they sleep and iterate.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc

from podium.client.errors import PodiumError
from podium.v1 import event_pb2

__all__ = ["TERMINAL_EVENT_TYPES", "ReconnectPolicy", "WatchCursor"]

TERMINAL_EVENT_TYPES = frozenset(
    {
        event_pb2.RUN_EVENT_TYPE_RUN_SUCCEEDED,
        event_pb2.RUN_EVENT_TYPE_RUN_FAILED,
        event_pb2.RUN_EVENT_TYPE_RUN_CANCELLED,
    }
)

# ErrorInfo reason of a subscriber cut off for lagging (ErrorReason SUBSCRIBER_TOO_SLOW).
SUBSCRIBER_TOO_SLOW = "SUBSCRIBER_TOO_SLOW"

# How a dropped HTTP/2 stream surfaces when the server process dies mid-stream, besides
# UNAVAILABLE; matched on the details because the codes are also used for real server faults.
_CONNECTION_LOSS_HINTS = ("stream removed", "rst_stream", "socket closed", "connection reset")


@dataclass(frozen=True)
class ReconnectPolicy:
    """Exponential backoff between reconnects, giving up after `give_up_after` seconds during
    which no attempt delivered anything."""

    initial_delay: float = 0.1
    max_delay: float = 2.0
    give_up_after: float = 30.0
    clock: Callable[[], float] = time.monotonic


class WatchCursor:
    """The position of one subscriber in a run's event log, across reconnects."""

    def __init__(self, after_sequence: int, policy: ReconnectPolicy | None = None) -> None:
        self.last_sequence = after_sequence
        self.finished = False
        self._policy = policy or ReconnectPolicy()
        self._failures = 0
        self._failing_since: float | None = None
        self._delivered_this_stream = False

    def stream_opened(self) -> None:
        self._delivered_this_stream = False

    def accept(self, events: Iterable[event_pb2.RunEvent]) -> list[event_pb2.RunEvent]:
        """The events not seen yet, in order; a response is proof the connection works again."""
        self._failures = 0
        self._failing_since = None
        fresh = []
        for event in events:
            # The server resumes after last_sequence, but a replayed batch straddling the cut
            # must still never reach the caller twice.
            if event.sequence <= self.last_sequence:
                continue
            self.last_sequence = event.sequence
            fresh.append(event)
            if event.type in TERMINAL_EVENT_TYPES:
                self.finished = True
        if fresh:
            self._delivered_this_stream = True
        return fresh

    def resume_after_end(self) -> bool:
        """Whether to reconnect after the server ended the stream cleanly.

        The stream normally ends after the run's final event. One that ends earlier after
        delivering events was cut short (a server shutting down), so resume; one that delivered
        nothing has nothing more to say, so stop rather than loop.
        """
        return not self.finished and self._delivered_this_stream

    def retry_delay(self, error: grpc.RpcError) -> float | None:
        """Seconds to wait before reconnecting after `error`, or None to give up and raise."""
        if _is_cut_off(error) and self._delivered_this_stream:
            # The server cut this subscriber off for falling too far behind the run; the
            # rest is in the event log, and resuming after last_sequence reads it at once.
            return 0.0
        if not _is_connection_loss(error) and not _is_cut_off(error):
            return None
        now = self._policy.clock()
        if self._failing_since is None:
            self._failing_since = now
        delay = min(self._policy.max_delay, self._policy.initial_delay * 2.0**self._failures)
        # Jitter spreads the reconnects of many subscribers after a server restart.
        delay *= random.uniform(0.5, 1.0)
        if now + delay - self._failing_since > self._policy.give_up_after:
            return None
        self._failures += 1
        return delay


def _is_cut_off(error: grpc.RpcError) -> bool:
    """A WatchRun stream the server ended because its subscriber lagged behind the run
    (RESOURCE_EXHAUSTED, reason SUBSCRIBER_TOO_SLOW): resumable from the last sequence seen."""
    call: grpc.Call = error  # type: ignore[assignment]
    code = call.code() if callable(getattr(call, "code", None)) else None
    if code != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return False
    decoded = PodiumError.from_rpc_error(error)
    return decoded.reason == SUBSCRIBER_TOO_SLOW and decoded.domain == "podium"


def _is_connection_loss(error: grpc.RpcError) -> bool:
    call: grpc.Call = error  # type: ignore[assignment]
    code = call.code() if callable(getattr(call, "code", None)) else None
    if code == grpc.StatusCode.UNAVAILABLE:
        return True
    if code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
        details = (call.details() or "").lower()
        return any(hint in details for hint in _CONNECTION_LOSS_HINTS)
    return False
