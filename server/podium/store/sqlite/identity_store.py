"""Identity persistence: API tokens (a hash of each secret, never the
secret) and the audit trail."""

from __future__ import annotations

import json
from typing import Any

from podium.identity.ports import AuditQuery, AuditRecord
from podium.identity.principal import Role
from podium.identity.tokens import TokenRecord
from podium.store.sqlite.store import SqliteStore


class SqliteIdentityStore:
    """The SQLite backend of identity's IdentityStore port (podium.identity.ports)."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def get_token(self, token_id: str) -> TokenRecord | None:
        rows = await self._store._fetchall("SELECT body FROM api_tokens WHERE id = ?", (token_id,))
        return _token(json.loads(rows[0][0])) if rows else None

    async def put_token(self, record: TokenRecord) -> None:
        self._store.writer.execute(
            "INSERT INTO api_tokens (id, tenant, body) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, body = excluded.body",
            (record.id, record.tenant, json.dumps(_token_body(record))),
        )
        await self._store.writer.commit()

    async def list_tokens(self, tenant: str) -> list[TokenRecord]:
        rows = await self._store._fetchall(
            "SELECT body FROM api_tokens WHERE tenant = ? ORDER BY id", (tenant,)
        )
        records = [_token(json.loads(row[0])) for row in rows]
        return sorted(records, key=lambda r: (r.create_time, r.id))

    def append_audit(self, record: AuditRecord) -> None:
        self._store.writer.execute(
            "INSERT INTO audit_records (time, tenant, subject, method, resource, request_id, "
            "code, request, after, before) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
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
            ),
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
            "SELECT id, time, tenant, subject, method, resource, request_id, code, request, after, "
            "before "
            f"FROM audit_records WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?",
            (*params, query.limit),
        )
        return [
            AuditRecord(
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
            for row in rows
        ]


def _token_body(record: TokenRecord) -> dict[str, Any]:
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


def _token(body: dict[str, Any]) -> TokenRecord:
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
