"""Identity persistence: API tokens (a hash of each secret, never the
secret) and the audit trail."""

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
from podium.store.sqlite.store import SqliteStore


class SqliteIdentityStore:
    """The SQLite backend of identity's IdentityStore port (podium.identity.ports)."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def get_token(self, token_id: str) -> TokenRecord | None:
        rows = await self._store._fetchall("SELECT body FROM api_tokens WHERE id = ?", (token_id,))
        return token_from_body(json.loads(rows[0][0])) if rows else None

    async def put_token(self, record: TokenRecord) -> None:
        self._store.writer.execute(
            "INSERT INTO api_tokens (id, tenant, body) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, body = excluded.body",
            (record.id, record.tenant, json.dumps(token_body(record))),
        )
        await self._store.writer.commit()

    async def list_tokens(self, tenant: str) -> list[TokenRecord]:
        rows = await self._store._fetchall(
            "SELECT body FROM api_tokens WHERE tenant = ? ORDER BY id", (tenant,)
        )
        records = [token_from_body(json.loads(row[0])) for row in rows]
        return sorted(records, key=lambda r: (r.create_time, r.id))

    def append_audit(self, record: AuditRecord) -> None:
        self._store.writer.execute(
            "INSERT INTO audit_records (time, tenant, subject, method, resource, request_id, "
            "code, request, after, before) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            audit_values(record),
        )

    async def list_audit(self, query: AuditQuery) -> list[AuditRecord]:
        clauses = ["tenant = ?"]
        params: list[Any] = [query.tenant]
        if query.subject:
            clauses.append("subject = ?")
            params.append(query.subject)
        if query.method:
            clauses.append("(method = ? OR method LIKE ?)")
            params += [query.method, "%/" + query.method]
        if query.resource:
            clauses.append("resource = ?")
            params.append(query.resource)
        if query.start_time is not None:
            clauses.append("time >= ?")
            params.append(query.start_time)
        if query.end_time is not None:
            clauses.append("time < ?")
            params.append(query.end_time)
        if query.before_id:
            clauses.append("id < ?")
            params.append(query.before_id)
        rows = await self._store._fetchall(
            f"SELECT {AUDIT_COLUMNS} "
            f"FROM audit_records WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?",
            (*params, query.limit),
        )
        return [audit_from_row(row) for row in rows]
