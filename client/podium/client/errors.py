"""Errors raised by the client: what the server said (PodiumError) or a bad definition file."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

__all__ = ["DefinitionError", "PodiumError", "translate_rpc_errors"]

# Where gRPC carries the google.rpc.Status with its typed details.
_STATUS_DETAILS_KEY = "grpc-status-details-bin"


class PodiumError(Exception):
    """A call failed: the gRPC status plus the ErrorInfo/BadRequest details the server attached.

    `code` is the grpc.StatusCode, `reason` the stable ErrorInfo reason (e.g. "INVALID_WORKFLOW",
    empty when the server sent none), `field_violations` a list of (field, description).
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        field_violations: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        self.field_violations: list[tuple[str, str]] = list(field_violations)
        super().__init__(str(self))

    @property
    def code_name(self) -> str:
        """ "INVALID_ARGUMENT" rather than the enum's repr."""
        return str(self.code.name)

    @property
    def detail(self) -> str:
        """One line saying what is wrong: the field violations when there are any, else the
        message."""
        if self.field_violations:
            return "; ".join(
                f"{field}: {desc}" if field else desc for field, desc in self.field_violations
            )
        return _one_line(self.message) or self.code_name

    @property
    def unreachable(self) -> bool:
        """True when no server answered (refused, DNS, dropped): UNAVAILABLE without any reason,
        as opposed to a server that deliberately reports itself unavailable."""
        return self.code == grpc.StatusCode.UNAVAILABLE and not self.reason

    def __str__(self) -> str:
        reason = f" [{self.reason}]" if self.reason else ""
        return f"{self.code_name}{reason} {self.detail}"

    def __repr__(self) -> str:
        return (
            f"PodiumError(code={self.code_name}, reason={self.reason!r}, "
            f"message={self.message!r}, field_violations={self.field_violations!r})"
        )

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> PodiumError:
        """Decode a failed call, including the rich status in its trailing metadata."""
        # Every RpcError raised by a call is also a grpc.Call, but the base class does not say so.
        call: grpc.Call = error  # type: ignore[assignment]
        code = call.code() if callable(getattr(call, "code", None)) else grpc.StatusCode.UNKNOWN
        message = (call.details() if callable(getattr(call, "details", None)) else None) or ""
        status = _rich_status(call)
        if status is None:
            return cls(code, message)
        reason, domain, metadata, violations = _decode_details(status)
        return cls(
            code,
            status.message or message,
            reason=reason,
            domain=domain,
            metadata=metadata,
            field_violations=violations,
        )


class DefinitionError(ValueError):
    """A workflow definition could not be read: missing file, bad YAML/JSON, unknown field.

    Raised by the client before anything is sent; the message is one line naming the source.
    """


@contextlib.contextmanager
def translate_rpc_errors() -> Iterator[None]:
    """Re-raise any grpc.RpcError inside the block as a PodiumError.

    A plain (sync) context manager so the same helper wraps blocking calls and `await`s.
    """
    try:
        yield
    except grpc.RpcError as error:
        raise PodiumError.from_rpc_error(error) from error


def _rich_status(call: grpc.Call) -> status_pb2.Status | None:
    trailing = (
        call.trailing_metadata() if callable(getattr(call, "trailing_metadata", None)) else None
    )
    for key, value in trailing or ():
        if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:
                # A garbled detail must not hide the status code and message we already have.
                return None
    return None


def _decode_details(
    status: status_pb2.Status,
) -> tuple[str, str, dict[str, str], list[tuple[str, str]]]:
    reason, domain, metadata = "", "", {}
    violations: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations.extend((v.field, v.description) for v in bad.field_violations)
    return reason, domain, metadata, violations


def _one_line(text: str) -> str:
    return " ".join(text.split())
