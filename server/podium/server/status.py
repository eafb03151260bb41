"""Domain errors -> google.rpc.Status with ErrorInfo (domain "podium") and,
for bad input, BadRequest field violations."""

from __future__ import annotations

import datetime
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from podium.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PodiumError,
    ResourceExhausted,
    Unavailable,
)

DOMAIN = "podium"
log = logging.getLogger("podium.server")

_CODES: list[tuple[type[PodiumError], int]] = [
    (InvalidArgument, code_pb2.INVALID_ARGUMENT),
    (NotFound, code_pb2.NOT_FOUND),
    (AlreadyExists, code_pb2.ALREADY_EXISTS),
    (FailedPrecondition, code_pb2.FAILED_PRECONDITION),
    (ResourceExhausted, code_pb2.RESOURCE_EXHAUSTED),
    (Unavailable, code_pb2.UNAVAILABLE),
]


def to_status(error: PodiumError) -> status_pb2.Status:
    code = next((c for kind, c in _CODES if isinstance(error, kind)), code_pb2.INTERNAL)
    metadata: dict[str, str] = {}
    details: list[Any] = []
    if isinstance(error, AlreadyExists):
        metadata["resource"] = error.resource
        details.append(error_details_pb2.ResourceInfo(resource_name=error.resource))
    if isinstance(error, ResourceExhausted):
        metadata.update(error.metadata)
    details.insert(
        0, error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=metadata)
    )
    if isinstance(error, InvalidArgument):
        details.append(_bad_request(error.violations))
    if isinstance(error, ResourceExhausted) and error.retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromTimedelta(datetime.timedelta(seconds=error.retry_after))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return status_pb2.Status(code=code, message=_message(error), details=packed)


def _message(error: PodiumError) -> str:
    if isinstance(error, InvalidArgument) and error.violations:
        text = "; ".join(f"{v.field}: {v.description}" for v in error.violations)
    else:
        text = error.message
    return _cut(text, MAX_MESSAGE_CHARACTERS)


# The status travels in trailers, which a client refuses past 8 KiB (grpc's
# default max metadata size): the whole call would then fail RESOURCE_EXHAUSTED
# instead of naming the problems. Messages and details are therefore bounded;
# the first violations are kept, and the rest counted.
MAX_MESSAGE_CHARACTERS = 1000
MAX_VIOLATION_CHARACTERS = 200
MAX_VIOLATIONS_BYTES = 2500


def _bad_request(violations: list[FieldViolation]) -> error_details_pb2.BadRequest:
    bad = error_details_pb2.BadRequest()
    for shown, violation in enumerate(violations):
        entry = error_details_pb2.BadRequest.FieldViolation(
            field=_cut(violation.field, MAX_VIOLATION_CHARACTERS),
            description=_cut(violation.description, MAX_VIOLATION_CHARACTERS),
        )
        if bad.ByteSize() + entry.ByteSize() > MAX_VIOLATIONS_BYTES:
            bad.field_violations.append(
                error_details_pb2.BadRequest.FieldViolation(
                    field="", description=f"{len(violations) - shown} more problems not shown"
                )
            )
            break
        bad.field_violations.append(entry)
    return bad


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def invalid(field: str, description: str, reason: str = "INVALID_ARGUMENT") -> InvalidArgument:
    return InvalidArgument(
        f"{field}: {description}", [FieldViolation(field, description)], reason=reason
    )


async def _abort_unexpected(
    name: str, error: Exception, context: grpc.aio.ServicerContext[Any, Any]
) -> None:
    """A bug, not a caller's mistake: the traceback goes to the log, the caller
    gets INTERNAL with an ErrorInfo (grpc's default would be UNKNOWN carrying
    the exception's text). Every such case found is a bug to fix with its own
    documented code; the fuzz tests fail on INTERNAL as they do on UNKNOWN."""
    log.exception("%s failed unexpectedly", name)
    internal = PodiumError(f"internal error: {type(error).__name__}", reason="INTERNAL")
    await context.abort_with_status(rpc_status.to_status(to_status(internal)))


Request = TypeVar("Request")
Response = TypeVar("Response")
Servicer = TypeVar("Servicer")


def unary(
    method: Callable[[Servicer, Request, grpc.aio.ServicerContext[Any, Any]], Awaitable[Response]],
) -> Callable[[Servicer, Request, grpc.aio.ServicerContext[Any, Any]], Awaitable[Response]]:
    """Maps domain errors raised by a unary handler to rich gRPC statuses."""

    @functools.wraps(method)
    async def handler(
        self: Servicer, request: Request, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Response:
        try:
            return await method(self, request, context)
        except PodiumError as error:
            await context.abort_with_status(rpc_status.to_status(to_status(error)))
            raise  # unreachable: abort raises
        except grpc.aio.AbortError:
            raise  # the handler aborted the call itself
        except Exception as error:
            await _abort_unexpected(method.__name__, error, context)
            raise  # unreachable: abort raises

    return handler


def streaming(
    method: Callable[
        [Servicer, Request, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Response]
    ],
) -> Callable[[Servicer, Request, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Response]]:
    """Maps domain errors raised by a server-streaming handler to rich statuses."""

    @functools.wraps(method)
    async def handler(
        self: Servicer, request: Request, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Response]:
        try:
            async for response in method(self, request, context):
                yield response
        except PodiumError as error:
            await context.abort_with_status(rpc_status.to_status(to_status(error)))
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await _abort_unexpected(method.__name__, error, context)

    return handler
