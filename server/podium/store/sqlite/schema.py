"""Versioned schema migrations. Append a migration; never edit a shipped one."""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: workflows, runs, steps, attempts and the event log.
    """
    CREATE TABLE workflows (
        workflow_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        spec TEXT NOT NULL,
        create_time REAL NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (workflow_id, version)
    ) WITHOUT ROWID;

    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        workflow_id TEXT NOT NULL,
        workflow_version INTEGER NOT NULL,
        state INTEGER NOT NULL,
        input TEXT NOT NULL,
        output TEXT,
        failure TEXT,
        request_id TEXT,
        request_hash TEXT NOT NULL,
        labels TEXT NOT NULL,
        max_concurrency INTEGER NOT NULL,
        create_time REAL NOT NULL,
        start_time REAL,
        end_time REAL,
        last_sequence INTEGER NOT NULL,
        usage TEXT,
        cost_nanos INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX runs_by_request_id ON runs (request_id) WHERE request_id IS NOT NULL;
    CREATE INDEX runs_by_create_time ON runs (create_time DESC, run_id DESC);
    CREATE INDEX runs_by_workflow ON runs (workflow_id, create_time DESC, run_id DESC);
    CREATE INDEX runs_unfinished ON runs (state) WHERE state IN (1, 2);

    CREATE TABLE steps (
        run_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        agent TEXT NOT NULL,
        state INTEGER NOT NULL,
        input TEXT,
        output TEXT,
        failure TEXT,
        reason TEXT NOT NULL,
        start_time REAL,
        end_time REAL,
        usage TEXT,
        cost_nanos INTEGER NOT NULL,
        PRIMARY KEY (run_id, step_id)
    ) WITHOUT ROWID;

    CREATE TABLE attempts (
        run_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        number INTEGER NOT NULL,
        state INTEGER NOT NULL,
        start_time REAL NOT NULL,
        end_time REAL,
        failure TEXT,
        usage TEXT,
        cost_nanos INTEGER NOT NULL,
        PRIMARY KEY (run_id, step_id, number)
    ) WITHOUT ROWID;

    CREATE TABLE events (
        run_id TEXT NOT NULL,
        sequence INTEGER NOT NULL,
        time REAL NOT NULL,
        type INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (run_id, sequence)
    ) WITHOUT ROWID;
    """,
    # 2: retention finds finished runs by end time without scanning every run.
    """
    CREATE INDEX runs_by_end_time ON runs (end_time) WHERE end_time IS NOT NULL;
    """,
    # 3: workflow semantics: priorities, waits (due_time), fan-out and loop
    # items (attempts gain an item key), the step result cache.
    """
    ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE steps ADD COLUMN due_time REAL;
    ALTER TABLE steps ADD COLUMN items_total INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE steps ADD COLUMN items_succeeded INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE steps ADD COLUMN items_failed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE steps ADD COLUMN iterations INTEGER NOT NULL DEFAULT 0;

    CREATE TABLE attempts_v3 (
        run_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        item INTEGER NOT NULL,
        number INTEGER NOT NULL,
        state INTEGER NOT NULL,
        start_time REAL NOT NULL,
        end_time REAL,
        failure TEXT,
        usage TEXT,
        cost_nanos INTEGER NOT NULL,
        PRIMARY KEY (run_id, step_id, item, number)
    ) WITHOUT ROWID;
    INSERT INTO attempts_v3
        SELECT run_id, step_id, -1, number, state, start_time, end_time, failure, usage,
               cost_nanos
        FROM attempts;
    DROP TABLE attempts;
    ALTER TABLE attempts_v3 RENAME TO attempts;

    CREATE TABLE items (
        run_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        item INTEGER NOT NULL,
        succeeded INTEGER NOT NULL,
        output TEXT,
        failure TEXT,
        PRIMARY KEY (run_id, step_id, item)
    ) WITHOUT ROWID;

    CREATE TABLE step_cache (
        key TEXT PRIMARY KEY,
        output TEXT NOT NULL,
        expire_time REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # 4: governance: quotas and budgets changed at runtime (they win over the
    # policy file by name; a deleted one is a tombstone), budget spend per
    # period, and spend per scope and UTC day for reporting.
    """
    ALTER TABLE runs ADD COLUMN max_cost_nanos INTEGER;
    CREATE TABLE governance_quotas (
        name TEXT PRIMARY KEY,
        body TEXT
    ) WITHOUT ROWID;
    CREATE TABLE governance_budgets (
        name TEXT PRIMARY KEY,
        body TEXT
    ) WITHOUT ROWID;
    CREATE TABLE budget_spend (
        budget TEXT NOT NULL,
        period_key TEXT NOT NULL,
        spent_nanos INTEGER NOT NULL,
        PRIMARY KEY (budget, period_key)
    ) WITHOUT ROWID;
    CREATE TABLE spend (
        scope_kind TEXT NOT NULL,
        scope_value TEXT NOT NULL,
        day TEXT NOT NULL,
        spent_nanos INTEGER NOT NULL,
        calls INTEGER NOT NULL,
        PRIMARY KEY (scope_kind, scope_value, day)
    ) WITHOUT ROWID;
    """,
    # 5: governance across crashes: reservations of calls in flight (a row
    # left at start is a call whose bill is unknown), and a record of starts
    # (a restarted server's rate buckets start empty).
    """
    CREATE TABLE budget_reservations (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        amount_nanos INTEGER NOT NULL,
        body TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE server_starts (
        start_time REAL NOT NULL
    );
    """,
    # 6: workflow definitions as applied (the serialized WorkflowSpec the client sent), so
    # that GetWorkflow returns them unchanged.
    """
    ALTER TABLE workflows ADD COLUMN applied BLOB;
    """,
    # 7: identity: API tokens (only a hash of each secret) and the audit trail.
    """
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        body TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX api_tokens_by_tenant ON api_tokens (tenant);
    CREATE TABLE audit_records (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time REAL NOT NULL,
        tenant TEXT NOT NULL,
        subject TEXT NOT NULL,
        method TEXT NOT NULL,
        resource TEXT NOT NULL,
        request_id TEXT NOT NULL,
        code TEXT NOT NULL,
        request TEXT NOT NULL,
        after TEXT,
        before TEXT
    );
    CREATE INDEX audit_records_by_tenant ON audit_records (tenant, id DESC);
    """,
    # 8: a run's trace context: the caller's traceparent and the run span's
    # own, so that a resumed run's span joins and links to its first trace.
    """
    ALTER TABLE runs ADD COLUMN trace_parent TEXT;
    ALTER TABLE runs ADD COLUMN trace_context TEXT;
    """,
    # 9: tenants: every workflow, run and spend record belongs to one (rows from
    # before are the tenant 'default'). A workflow id is unique within its tenant,
    # so the tenant leads the workflows' key; request ids (idempotency keys) are
    # unique within a tenant too; lists read a tenant's runs by index.
    """
    CREATE TABLE workflows_v9 (
        tenant TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        spec TEXT NOT NULL,
        create_time REAL NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        applied BLOB,
        PRIMARY KEY (tenant, workflow_id, version)
    ) WITHOUT ROWID;
    INSERT INTO workflows_v9
        SELECT 'default', workflow_id, version, spec, create_time, deleted, applied
        FROM workflows;
    DROP TABLE workflows;
    ALTER TABLE workflows_v9 RENAME TO workflows;

    ALTER TABLE runs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
    DROP INDEX runs_by_request_id;
    CREATE UNIQUE INDEX runs_by_request_id ON runs (tenant, request_id)
        WHERE request_id IS NOT NULL;
    DROP INDEX runs_by_workflow;
    CREATE INDEX runs_by_workflow ON runs (tenant, workflow_id, create_time DESC, run_id DESC);
    CREATE INDEX runs_by_tenant ON runs (tenant, create_time DESC, run_id DESC);

    CREATE TABLE spend_v9 (
        tenant TEXT NOT NULL,
        scope_kind TEXT NOT NULL,
        scope_value TEXT NOT NULL,
        day TEXT NOT NULL,
        spent_nanos INTEGER NOT NULL,
        calls INTEGER NOT NULL,
        PRIMARY KEY (tenant, scope_kind, scope_value, day)
    ) WITHOUT ROWID;
    INSERT INTO spend_v9
        SELECT 'default', scope_kind, scope_value, day, spent_nanos, calls FROM spend;
    DROP TABLE spend;
    ALTER TABLE spend_v9 RENAME TO spend;
    """,
    # signals sent to runs (kept in order until a wait_for_signal step consumes
    # them; request ids unique within a run), callback steps' single-use tokens,
    # and runs' completion notifications (armed, pending delivery, done).
    """
    CREATE TABLE signals (
        run_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        payload TEXT NOT NULL,
        time REAL NOT NULL,
        request_id TEXT,
        consumed_by TEXT NOT NULL,
        PRIMARY KEY (run_id, position)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX signals_by_request_id ON signals (run_id, request_id)
        WHERE request_id IS NOT NULL;
    CREATE TABLE callbacks (
        token TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        issue_time REAL NOT NULL,
        outcome TEXT NOT NULL,
        payload TEXT
    ) WITHOUT ROWID;
    CREATE INDEX callbacks_by_run ON callbacks (run_id);
    CREATE TABLE notifications (
        run_id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        secret TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        due_time REAL
    ) WITHOUT ROWID;
    CREATE INDEX notifications_pending ON notifications (state) WHERE state = 'PENDING';
    """,
    # 11: several servers on one database (cluster mode): each live server's lease,
    # each unfinished run's owner and fencing epoch, control commands for a run's
    # owner (CancelRun, ResolveApproval received elsewhere), a database-wide order
    # of events (feed) that other servers poll to stream them, and the shared
    # quotas: rate buckets and concurrency leases (a lease counts while its
    # server's lease is live), and the shared circuit breakers (state and probe).
    """
    CREATE TABLE cluster_servers (
        server_id TEXT PRIMARY KEY,
        expire_time REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE run_owners (
        run_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        epoch INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX run_owners_by_owner ON run_owners (owner);
    CREATE TABLE run_commands (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        create_time REAL NOT NULL,
        done INTEGER NOT NULL DEFAULT 0,
        result TEXT
    );
    CREATE INDEX run_commands_pending ON run_commands (run_id) WHERE done = 0;
    ALTER TABLE events ADD COLUMN feed INTEGER;
    CREATE INDEX events_by_feed ON events (feed) WHERE feed IS NOT NULL;
    CREATE TABLE quota_buckets (
        name TEXT PRIMARY KEY,
        tokens REAL NOT NULL,
        update_time REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE quota_leases (
        id TEXT NOT NULL,
        name TEXT NOT NULL,
        server_id TEXT NOT NULL,
        PRIMARY KEY (id, name)
    ) WITHOUT ROWID;
    CREATE INDEX quota_leases_by_name ON quota_leases (name);
    CREATE TABLE breaker_states (
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        changed_time REAL NOT NULL,
        probe_expire REAL,
        PRIMARY KEY (tenant, name)
    ) WITHOUT ROWID;
    """,
    # pause: a re-run names the run it re-runs (RerunRun).
    """
    ALTER TABLE runs ADD COLUMN rerun_of TEXT;
    """,
    # child: child runs (Step.workflow) link to their parent run and step.
    """
    ALTER TABLE runs ADD COLUMN parent_run_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN parent_step_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX runs_by_parent ON runs (parent_run_id, create_time) WHERE parent_run_id != '';
    """,
    # sched: schedules (cron or interval, zone, overlap policy, catch-up window,
    # jitter) with the next nominal time not yet claimed, and each claimed
    # nominal time's outcome (claimed, started with its run, buffered, skipped,
    # missed); a conditional update of next_fire is the claim.
    """
    CREATE TABLE schedules (
        tenant TEXT NOT NULL,
        schedule_id TEXT NOT NULL,
        body TEXT NOT NULL,
        paused INTEGER NOT NULL,
        next_fire REAL,
        PRIMARY KEY (tenant, schedule_id)
    ) WITHOUT ROWID;
    CREATE INDEX schedules_due ON schedules (next_fire) WHERE paused = 0;
    CREATE TABLE schedule_fires (
        schedule_id TEXT NOT NULL,
        nominal_time REAL NOT NULL,
        outcome TEXT NOT NULL,
        run_id TEXT NOT NULL,
        time REAL NOT NULL,
        PRIMARY KEY (schedule_id, nominal_time)
    ) WITHOUT ROWID;
    CREATE INDEX schedule_fires_open ON schedule_fires (outcome)
        WHERE outcome IN ('CLAIMED', 'BUFFERED');
    """,
    # sched2: the server that claimed a fire handles it; another takes it over
    # only once that server's lease has expired (cluster mode).
    """
    ALTER TABLE schedule_fires ADD COLUMN claimer TEXT NOT NULL DEFAULT '';
    """,
    # alerts: the alerts settings changed at runtime (UpdateAlerts), one row "alerts";
    # a NULL body switches alerting off (a tombstone, as for quotas and budgets).
    """
    CREATE TABLE governance_alerts (
        name TEXT PRIMARY KEY,
        body TEXT
    ) WITHOUT ROWID;
    """,
    # child2: RerunRuns calls made with a request id, with the originals their
    # filter chose (a JSON list), so that a retry re-runs the same runs.
    """
    CREATE TABLE rerun_batches (
        tenant TEXT NOT NULL,
        request_id TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        originals TEXT NOT NULL,
        time REAL NOT NULL,
        PRIMARY KEY (tenant, request_id)
    ) WITHOUT ROWID;
    """,
    # relay: worker presence per server and the task relay through the database
    # (cluster mode: a worker connected to one server runs another's steps)
    """
    CREATE TABLE cluster_workers (
        server_id TEXT NOT NULL,
        queue TEXT NOT NULL,
        agent TEXT NOT NULL,
        tenant TEXT NOT NULL,
        declaration TEXT NOT NULL,
        PRIMARY KEY (server_id, queue, agent, tenant)
    ) WITHOUT ROWID;
    CREATE TABLE relay_tasks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        item INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        owner TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        queue TEXT NOT NULL,
        agent TEXT NOT NULL,
        tenant TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL,
        holder TEXT,
        claim_time REAL,
        cancel INTEGER NOT NULL DEFAULT 0,
        outcome TEXT,
        create_time REAL NOT NULL
    );
    CREATE INDEX relay_tasks_pending ON relay_tasks (agent) WHERE state = 'PENDING';
    CREATE INDEX relay_tasks_by_holder ON relay_tasks (holder) WHERE state = 'CLAIMED';
    CREATE INDEX relay_tasks_by_run ON relay_tasks (run_id, step_id, item);
    CREATE TABLE relay_calls (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        request BLOB NOT NULL,
        response BLOB,
        create_time REAL NOT NULL
    );
    CREATE INDEX relay_calls_by_task ON relay_calls (task_id);
    """,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Brings the schema up to date; returns the resulting version."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    current = int(row[0]) if row else 0
    if current > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {current} is newer than this server ({len(MIGRATIONS)})"
        )
    for version in range(current + 1, len(MIGRATIONS) + 1):
        conn.executescript(
            "BEGIN IMMEDIATE;\n"
            + MIGRATIONS[version - 1]
            + "\nDELETE FROM schema_version;"
            + f"\nINSERT INTO schema_version (version) VALUES ({version});\nCOMMIT;"
        )
    return len(MIGRATIONS)
