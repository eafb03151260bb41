"""Schema 9 (tenants) migrates a database of schema 8 in place: every workflow,
run and spend record already there belongs to the tenant `default`, stays
readable as it was, and the tenants' keys and indexes apply from then on."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

from podium.core.model import RunRecord
from podium.core.spec import WorkflowSpec
from podium.core.states import RunState
from podium.store.sqlite.governance_store import SqliteGovernanceStore
from podium.store.sqlite.schema import MIGRATIONS
from podium.store.sqlite.store import SqliteStore

SPEC = WorkflowSpec.model_validate({"steps": [{"id": "s", "agent": "echo"}]})


def _schema_8(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for script in MIGRATIONS[:8]:
            conn.executescript(script)
        conn.execute("INSERT INTO schema_version (version) VALUES (8)")
        conn.execute(
            "INSERT INTO workflows (workflow_id, version, spec, create_time, deleted) "
            "VALUES ('etl', 1, ?, 1.0, 0), ('etl', 2, ?, 2.0, 0), ('gone', 1, ?, 1.0, 1)",
            (SPEC.model_dump_json(),) * 3,
        )
        conn.execute(
            "INSERT INTO runs (run_id, workflow_id, workflow_version, state, input, request_id,"
            " request_hash, labels, max_concurrency, create_time, last_sequence, cost_nanos)"
            " VALUES ('r1', 'etl', 2, ?, '{}', 'req-1', 'h', '{}', 0, 3.0, 0, 0)",
            (int(RunState.SUCCEEDED),),
        )
        conn.execute(
            "INSERT INTO spend (scope_kind, scope_value, day, spent_nanos, calls)"
            " VALUES ('server', '', '2025-06-01', 7000000000, 2)"
        )


async def test_a_schema_8_database_migrates_to_9_with_everything_in_default(
    tmp_path: Path,
) -> None:
    db = tmp_path / "old.db"
    _schema_8(db)
    store = SqliteStore(str(db))
    await store.open()
    try:
        latest = await store.get_workflow("etl")
        assert latest is not None and (latest.version, latest.tenant) == (2, "default")
        assert await store.get_workflow("etl", tenant="acme") is None
        assert await store.get_workflow("gone") is None
        assert [w.workflow_id for w in await store.list_workflows(10)] == ["etl"]
        assert await store.list_workflows(10, tenant="acme") == []

        view = await store.get_run("r1")
        assert view is not None and view.run.tenant == "default"
        assert await store.run_tenant("r1") == "default"
        assert [r.run_id for r in await store.list_runs(10)] == ["r1"]
        assert await store.list_runs(10, tenant="acme") == []
        found = await store.find_run_by_request_id("req-1")
        assert found is not None and found.run_id == "r1"
        assert await store.find_run_by_request_id("req-1", tenant="acme") is None

        governance = SqliteGovernanceStore(store)
        assert await governance.spend("default") == [("server", "", "2025-06-01", Decimal("7"), 2)]
        assert await governance.spend("acme") == []

        # From now on the same workflow id and request id are another tenant's own.
        assert await store.create_workflow("etl", SPEC, 4.0, tenant="acme") == 1
        assert await store.create_workflow("etl", SPEC, 5.0) == 3
        store.put_run(
            RunRecord(
                run_id="r2",
                workflow_id="etl",
                workflow_version=1,
                state=RunState.PENDING,
                input={},
                create_time=6.0,
                request_id="req-1",
                tenant="acme",
            )
        )
        await store.commit()
        again = await store.find_run_by_request_id("req-1", tenant="acme")
        assert again is not None and again.run_id == "r2"
        assert [r.run_id for r in await store.list_runs(10, tenant="acme")] == ["r2"]
        assert [r.run_id for r in await store.list_runs(10)] == ["r1"]
    finally:
        await store.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (len(MIGRATIONS),)
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert {"runs_by_tenant", "runs_by_workflow", "runs_by_request_id"} <= indexes
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT run_id FROM runs WHERE tenant = 'acme' "
            "ORDER BY create_time DESC, run_id DESC LIMIT 5"
        ).fetchall()
        assert "runs_by_tenant" in " ".join(str(step[-1]) for step in plan)
