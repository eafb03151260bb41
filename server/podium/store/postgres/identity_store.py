"""Identity persistence on PostgreSQL: API tokens (a hash of each secret,
never the secret) and the audit trail, as podium.store.sqlite.identity_store
keeps them."""

from __future__ import annotations

import json
from typing import Any

from podium.identity.ports import AuditQuery, AuditRecord
from podium.identity.tokens import TokenRecord
from podium.store.identity_codec import (
    AUDIT_COLUMNS,
    audit_from_row,
    audit_values,
    token_body,
    token_from_body,
)
from podium.store.postgres.codec import text
from podium.store.postgres.store import PostgresStore


class PostgresIdentityStore:
    """The PostgreSQL backend of identity's IdentityStore port (podium.identity.ports)."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def get_token(self, token_id: str) -> TokenRecord | None:
        rows = await self._store.fetch("SELECT body FROM api_tokens WHERE id = $1", text(token_id))
        return token_from_body(json.loads(rows[0][0])) if rows else None

    async def put_token(self, record: TokenRecord) -> None:
        self._store.writer.execute(
            "INSERT INTO api_tokens (id, tenant, body) VALUES ($1, $2, $3) "
            "ON CONFLICT (id) DO UPDATE SET tenant = EXCLUDED.tenant, body = EXCLUDED.body",
            (text(record.id), text(record.tenant), json.dumps(token_body(record))),
        )
        await self._store.writer.commit()

    async def list_tokens(self, tenant: str) -> list[TokenRecord]:
        rows = await self._store.fetch(
            "SELECT body FROM api_tokens WHERE tenant = $1 ORDER BY id", text(tenant)
        )
        records = [token_from_body(json.loads(row[0])) for row in rows]
        return sorted(records, key=lambda r: (r.create_time, r.id))

    def append_audit(self, record: AuditRecord) -> None:
        values = audit_values(record)
        # Strings a caller chose (subject, resource, request id) may hold NUL.
        values = (values[0], *(text(value) for value in values[1:7]), *values[7:])
        self._store.writer.execute(
            "INSERT INTO audit_records (time, tenant, subject, method, resource, request_id, "
            "code, request, after, before) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            values,
        )

    async def list_audit(self, query: AuditQuery) -> list[AuditRecord]:
        params: list[Any] = []

        def param(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        clauses = [f"tenant = {param(text(query.tenant))}"]
        if query.subject:
            clauses.append(f"subject = {param(text(query.subject))}")
        if query.method:
            method = text(query.method)
            clauses.append(f"(method = {param(method)} OR method LIKE {param('%/' + method)})")
        if query.resource:
            clauses.append(f"resource = {param(text(query.resource))}")
        if query.start_time is not None:
            clauses.append(f"time >= {param(query.start_time)}")
        if query.end_time is not None:
            clauses.append(f"time < {param(query.end_time)}")
        if query.before_id:
            clauses.append(f"id < {param(query.before_id)}")
        rows = await self._store.fetch(
            f"SELECT {AUDIT_COLUMNS} FROM audit_records WHERE {' AND '.join(clauses)} "
            f"ORDER BY id DESC LIMIT {param(query.limit)}",
            *params,
        )
        return [audit_from_row(row) for row in rows]
