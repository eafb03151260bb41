"""Schema 7 (API tokens, audit records) migrates a database of schema 5 in
place (through 6, and on to the latest): what was there stays and the new tables come."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from podium.identity.ports import AuditQuery, AuditRecord
from podium.identity.principal import Role
from podium.identity.tokens import issue
from podium.store.sqlite.identity_store import SqliteIdentityStore
from podium.store.sqlite.schema import MIGRATIONS
from podium.store.sqlite.store import SqliteStore


def _schema_5(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for script in MIGRATIONS[:5]:
            conn.executescript(script)
        conn.execute("INSERT INTO schema_version (version) VALUES (5)")
        conn.execute(
            "INSERT INTO workflows (workflow_id, version, spec, create_time) "
            "VALUES ('kept', 1, '{}', 1.0)"
        )


async def test_a_schema_5_database_migrates_to_7(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    _schema_5(db)
    store = SqliteStore(str(db))
    await store.open()
    try:
        identity = SqliteIdentityStore(store)
        token = issue("t", "default", frozenset({Role.VIEWER}), now=5.0, creator="test")
        await identity.put_token(token.record)
        assert await identity.get_token(token.record.id) == token.record
        identity.append_audit(
            AuditRecord(5.0, "tokens/x", "default", "/m/M", "runs/r", "req", "OK", {}, None)
        )
        await store.commit()
        [record] = await identity.list_audit(AuditQuery(tenant="default"))
        assert (record.subject, record.resource, record.id) == ("tokens/x", "runs/r", 1)
        assert await identity.list_audit(AuditQuery(tenant="other")) == []
    finally:
        await store.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (len(MIGRATIONS),)
        assert len(MIGRATIONS) >= 7  # later migrations run too
        assert conn.execute("SELECT workflow_id FROM workflows").fetchall() == [("kept",)]
