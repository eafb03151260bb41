"""Domain errors: the engine decides, servicers map these to gRPC statuses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One reason why a request is invalid, naming the offending field."""

    field: str
    description: str


class PodiumError(Exception):
    """Base of the errors the engine reports to callers."""

    reason: str = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class InvalidArgument(PodiumError):
    reason = "INVALID_ARGUMENT"

    def __init__(
        self, message: str, violations: list[FieldViolation], *, reason: str | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.violations = violations


class NotFound(PodiumError):
    reason = "NOT_FOUND"


class AlreadyExists(PodiumError):
    reason = "ALREADY_EXISTS"

    def __init__(self, message: str, *, resource: str, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.resource = resource


class FailedPrecondition(PodiumError):
    reason = "FAILED_PRECONDITION"


class Unavailable(PodiumError):
    reason = "UNAVAILABLE"


class ResourceExhausted(PodiumError):
    reason = "RESOURCE_EXHAUSTED"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        retry_after: float | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """`retry_after`: seconds after which the same call may succeed (sent
        to the client as google.rpc.RetryInfo), when the server can say;
        `metadata`: what the client needs to go on (the ErrorInfo's metadata),
        e.g. where a cut-off stream resumes."""
        super().__init__(message, reason=reason)
        self.retry_after = retry_after
        self.metadata = dict(metadata or {})
