"""Failures: what a step, an attempt or a run records when something goes
wrong, the reserved failure types, and the two exceptions that plugins raise
on purpose (re-exported to plugin authors by `podium.plugins.api`).

They live on the ground floor because every layer speaks them: agents raise
them, governance raises them on refusal, the engine records them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "BUDGET_EXCEEDED",
    "CANCELLED",
    "CIRCUIT_OPEN",
    "INTERNAL",
    "INTERRUPTED",
    "INVALID_INPUT",
    "INVALID_OUTPUT",
    "QUOTA_EXCEEDED",
    "REJECTED",
    "TIMEOUT",
    "TOO_MANY_FAILED_ITEMS",
    "UNKNOWN_AGENT",
    "AgentAborted",
    "AgentError",
    "Failure",
    "ProviderError",
    "failure_from_exception",
]

# Reserved failure types, named like the agent error classes they sit beside.
TIMEOUT = "podium.Timeout"
CANCELLED = "podium.Cancelled"
INVALID_INPUT = "podium.InvalidInput"
INVALID_OUTPUT = "podium.InvalidOutput"
UNKNOWN_AGENT = "podium.UnknownAgent"
INTERRUPTED = "podium.Interrupted"
REJECTED = "podium.Rejected"
BUDGET_EXCEEDED = "podium.BudgetExceeded"
QUOTA_EXCEEDED = "podium.QuotaExceeded"
CIRCUIT_OPEN = "podium.CircuitOpen"
TOO_MANY_FAILED_ITEMS = "podium.TooManyFailedItems"
# A fault in Podium's own handling of a step (a bug): recorded, never hidden.
INTERNAL = "podium.Internal"


@dataclass(frozen=True, slots=True)
class Failure:
    """Why something failed: a stable error name and a human message."""

    type: str
    message: str
    retryable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "retryable": self.retryable}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Failure | None:
        return cls(**data) if data else None


class AgentError(Exception):
    """An error an agent raises on purpose. `code` becomes the failure type
    that retry policies match on (default: the exception's class name)."""

    def __init__(self, message: str, *, code: str | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.code = code or type(self).__name__
        self.retryable = retryable


class ProviderError(Exception):
    """An error a provider raises; `kind` tells governance how to react:
    "rate_limited", "overloaded", "server_error", "timeout", "connection",
    "bad_request", "authentication".

    `charge_reservation`: the provider may have billed the call although no
    usage arrived (a stream that broke midway): governance then charges the
    call's whole reservation (fail closed) instead of releasing it."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        status: int | None = None,
        retry_after: float | None = None,
        charge_reservation: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.charge_reservation = charge_reservation

    @property
    def code(self) -> str:
        return f"provider.{self.kind}"


# Provider faults that a later attempt may not hit again.
_TRANSIENT_PROVIDER_KINDS = frozenset(
    {"rate_limited", "overloaded", "server_error", "timeout", "connection"}
)


class AgentAborted(Exception):
    """Carries what an agent or a tool raised that is not an Exception
    (SystemExit, KeyboardInterrupt, GeneratorExit, a CancelledError nobody
    asked for), so that it fails the attempt like any error instead of
    stopping the event loop or ending the step as if cancelled."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error


def failure_from_exception(error: BaseException) -> Failure:
    """How an exception raised by an agent, a tool or a provider is recorded."""
    if isinstance(error, AgentAborted):
        error = error.error
    message = str(error) or type(error).__name__
    if not isinstance(error, Exception):
        # The agent asked to end the process, or broke the coroutine protocol:
        # not a transient fault, so another attempt would only do it again.
        return Failure(type(error).__name__, message, retryable=False)
    if isinstance(error, ProviderError):
        return Failure(error.code, message, error.kind in _TRANSIENT_PROVIDER_KINDS)
    if isinstance(error, AgentError):
        return Failure(error.code, message, error.retryable)
    return Failure(type(error).__name__, message, True)
