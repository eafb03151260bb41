"""Requests of IdentityService from plain values: role names, token names."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import duration_pb2

from podium.v1 import identity_service_pb2

__all__ = ["ROLE_NAMES", "create_token_request", "role_name", "role_value", "token_name"]

ROLE_NAMES = ("admin", "operator", "developer", "viewer", "approver", "worker")


def role_value(name: str) -> identity_service_pb2.Role.ValueType:
    """'admin' or 'ROLE_ADMIN' -> ROLE_ADMIN; ValueError naming the known roles."""
    key = name.strip().upper()
    key = key if key.startswith("ROLE_") else f"ROLE_{key}"
    if key == "ROLE_UNSPECIFIED" or key not in identity_service_pb2.Role.keys():  # noqa: SIM118
        raise ValueError(f"unknown role {name!r} (known: {', '.join(ROLE_NAMES)})")
    return identity_service_pb2.Role.Value(key)


def role_name(value: int) -> str:
    return identity_service_pb2.Role.Name(value).removeprefix("ROLE_").lower()  # type: ignore[arg-type]


def token_name(name_or_id: str) -> str:
    return name_or_id if name_or_id.startswith("tokens/") else f"tokens/{name_or_id}"


def create_token_request(
    display_name: str, roles: Iterable[str], *, tenant: str = "", ttl_seconds: float | None = None
) -> identity_service_pb2.CreateTokenRequest:
    request = identity_service_pb2.CreateTokenRequest(
        display_name=display_name, tenant=tenant, roles=[role_value(r) for r in roles]
    )
    if ttl_seconds is not None:
        ttl = duration_pb2.Duration()
        ttl.FromNanoseconds(int(ttl_seconds * 1e9))
        request.ttl.CopyFrom(ttl)
    return request
