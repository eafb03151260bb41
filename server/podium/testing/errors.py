"""The rich error model of Podium's RPCs: every error carries a
google.rpc.Status with an ErrorInfo (reason, domain, metadata) and, for
invalid requests, a BadRequest naming each field and why. Tests assert on
those, not on the free-text details."""

from __future__ import annotations

from typing import cast

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = ["error_info", "error_status", "field_violations"]


def error_status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    """The google.rpc.Status in the error's trailers (AssertionError if none)."""
    status = rpc_status.from_call(cast(grpc.Call, error))
    assert status is not None, f"no rich status on {error.code()}: {error.details()}"
    return status


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The error's ErrorInfo: `reason` is the machine-readable cause."""
    for detail in error_status(error).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError("no ErrorInfo in the status details")


def field_violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """(field path, description) of each BadRequest violation, in order."""
    for detail in error_status(error).details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return [(v.field, v.description) for v in bad.field_violations]
    raise AssertionError("no BadRequest in the status details")
