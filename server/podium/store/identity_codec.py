"""Identity records <-> rows, shared by every backend: a token is a JSON body
(with a hash of its secret, never the secret), an audit record a row of
columns with JSON request and states."""

from __future__ import annotations

import json
from typing import Any

from podium.identity.ports import AuditRecord
from podium.identity.principal import Role
from podium.identity.tokens import TokenRecord


def token_body(record: TokenRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "display_name": record.display_name,
        "tenant": record.tenant,
        "roles": sorted(role.name.lower() for role in record.roles),
        "secret_hash": record.secret_hash,
        "create_time": record.create_time,
        "creator": record.creator,
        "expire_time": record.expire_time,
        "revoke_time": record.revoke_time,
    }


def token_from_body(body: dict[str, Any]) -> TokenRecord:
    return TokenRecord(
        id=body["id"],
        display_name=body["display_name"],
        tenant=body["tenant"],
        roles=frozenset(Role.parse(name) for name in body["roles"]),
        secret_hash=body["secret_hash"],
        create_time=body["create_time"],
        creator=body["creator"],
        expire_time=body["expire_time"],
        revoke_time=body["revoke_time"],
    )


def audit_values(record: AuditRecord) -> tuple[Any, ...]:
    """time, tenant, subject, method, resource, request_id, code, request, after, before."""
    return (
        record.time,
        record.tenant,
        record.subject,
        record.method,
        record.resource,
        record.request_id,
        record.code,
        json.dumps(record.request),
        None if record.after is None else json.dumps(record.after),
        None if record.before is None else json.dumps(record.before),
    )


AUDIT_COLUMNS = (
    "id, time, tenant, subject, method, resource, request_id, code, request, after, before"
)


def audit_from_row(row: Any) -> AuditRecord:
    return AuditRecord(
        id=row[0],
        time=row[1],
        tenant=row[2],
        subject=row[3],
        method=row[4],
        resource=row[5],
        request_id=row[6],
        code=row[7],
        request=json.loads(row[8]),
        after=None if row[9] is None else json.loads(row[9]),
        before=None if row[10] is None else json.loads(row[10]),
    )
