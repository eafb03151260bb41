"""Versioned schema migrations for PostgreSQL. Append a migration; never edit
a shipped one.

The first migration is the SQLite schema as it stands after its own
migrations (store/sqlite/schema.py), in PostgreSQL's types: a table or column
added there later is a migration appended here too, with the same names.
Migrations run in one transaction under an advisory lock, so servers that
start together on one database migrate it once.
"""

from __future__ import annotations

import asyncpg

# pg_advisory_xact_lock key of the migrations ("podium" in ASCII).
MIGRATION_LOCK = 0x706F6469756D

MIGRATIONS: list[str] = [
    # 1: everything SQLite has after its migration 9: workflows, runs, steps,
    # attempts, items, events, the step cache, governance (runtime quotas and
    # budgets, spend, reservations, server starts), identity (API tokens, audit
    # trail). JSON is kept as text, exactly as encoded (podium.store.codec);
    # labels also as JSONB (labels_filter) for the indexed label filter.
    # Money is integer nanos, times are seconds since the epoch.
    """
    CREATE TABLE workflows (
        tenant TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        spec TEXT NOT NULL,
        create_time DOUBLE PRECISION NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        applied BYTEA,
        PRIMARY KEY (tenant, workflow_id, version)
    );

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
        create_time DOUBLE PRECISION NOT NULL,
        start_time DOUBLE PRECISION,
        end_time DOUBLE PRECISION,
        last_sequence BIGINT NOT NULL,
        usage TEXT,
        cost_nanos BIGINT NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        max_cost_nanos BIGINT,
        trace_parent TEXT,
        trace_context TEXT,
        tenant TEXT NOT NULL DEFAULT 'default',
        labels_filter JSONB NOT NULL DEFAULT '{}'
    );
    -- ListRuns: a tenant's runs newest first, by workflow, by state, by labels.
    CREATE UNIQUE INDEX runs_by_request_id ON runs (tenant, request_id)
        WHERE request_id IS NOT NULL;
    CREATE INDEX runs_by_tenant ON runs (tenant, create_time DESC, run_id DESC);
    CREATE INDEX runs_by_workflow ON runs (tenant, workflow_id, create_time DESC, run_id DESC);
    CREATE INDEX runs_by_state ON runs (tenant, state, create_time DESC, run_id DESC);
    CREATE INDEX runs_by_labels ON runs USING GIN (labels_filter jsonb_path_ops);
    -- Recovery: unfinished runs (PENDING, RUNNING, WAITING_APPROVAL) oldest first.
    CREATE INDEX runs_unfinished ON runs (create_time) WHERE state IN (1, 2, 7);
    -- Retention: finished runs by end time.
    CREATE INDEX runs_by_end_time ON runs (end_time, run_id) WHERE end_time IS NOT NULL;

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
        start_time DOUBLE PRECISION,
        end_time DOUBLE PRECISION,
        usage TEXT,
        cost_nanos BIGINT NOT NULL,
        due_time DOUBLE PRECISION,
        items_total INTEGER NOT NULL DEFAULT 0,
        items_succeeded INTEGER NOT NULL DEFAULT 0,
        items_failed INTEGER NOT NULL DEFAULT 0,
        iterations INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, step_id)
    );

    CREATE TABLE attempts (
        run_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        item INTEGER NOT NULL,
        number INTEGER NOT NULL,
        state INTEGER NOT NULL,
        start_time DOUBLE PRECISION NOT NULL,
        end_time DOUBLE PRECISION,
        failure TEXT,
        usage TEXT,
        cost_nanos BIGINT NOT NULL,
        PRIMARY KEY (run_id, step_id, item, number)
    );

    CREATE TABLE items (
        run_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        item INTEGER NOT NULL,
        succeeded INTEGER NOT NULL,
        output TEXT,
        failure TEXT,
        PRIMARY KEY (run_id, step_id, item)
    );

    CREATE TABLE events (
        run_id TEXT NOT NULL,
        sequence BIGINT NOT NULL,
        time DOUBLE PRECISION NOT NULL,
        type INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (run_id, sequence)
    );
    -- Insights read a run's events of some types without the rest of the log.
    CREATE INDEX events_by_type ON events (run_id, type, sequence);

    CREATE TABLE step_cache (
        key TEXT PRIMARY KEY,
        output TEXT NOT NULL,
        expire_time DOUBLE PRECISION NOT NULL
    );

    CREATE TABLE governance_quotas (
        name TEXT PRIMARY KEY,
        body TEXT
    );
    CREATE TABLE governance_budgets (
        name TEXT PRIMARY KEY,
        body TEXT
    );
    CREATE TABLE budget_spend (
        budget TEXT NOT NULL,
        period_key TEXT NOT NULL,
        spent_nanos BIGINT NOT NULL,
        PRIMARY KEY (budget, period_key)
    );
    CREATE TABLE spend (
        tenant TEXT NOT NULL,
        scope_kind TEXT NOT NULL,
        scope_value TEXT NOT NULL,
        day TEXT NOT NULL,
        spent_nanos BIGINT NOT NULL,
        calls BIGINT NOT NULL,
        PRIMARY KEY (tenant, scope_kind, scope_value, day)
    );
    CREATE INDEX spend_by_day ON spend (tenant, day);
    CREATE TABLE budget_reservations (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        amount_nanos BIGINT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE TABLE server_starts (
        start_time DOUBLE PRECISION NOT NULL
    );

    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX api_tokens_by_tenant ON api_tokens (tenant);
    CREATE TABLE audit_records (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        time DOUBLE PRECISION NOT NULL,
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
    -- ListAudit: a tenant's records newest first, by subject, by resource.
    CREATE INDEX audit_records_by_tenant ON audit_records (tenant, id DESC);
    CREATE INDEX audit_records_by_subject ON audit_records (tenant, subject, id DESC);
    CREATE INDEX audit_records_by_resource ON audit_records (tenant, resource, id DESC);
    """,
    # As SQLite's: signals sent to runs (kept in order until a wait_for_signal
    # step consumes them; request ids unique within a run), callback steps'
    # single-use tokens, and runs' completion notifications.
    """
    CREATE TABLE signals (
        run_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        payload TEXT NOT NULL,
        time DOUBLE PRECISION NOT NULL,
        request_id TEXT,
        consumed_by TEXT NOT NULL,
        PRIMARY KEY (run_id, position)
    );
    CREATE UNIQUE INDEX signals_by_request_id ON signals (run_id, request_id)
        WHERE request_id IS NOT NULL;
    CREATE TABLE callbacks (
        token TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        issue_time DOUBLE PRECISION NOT NULL,
        outcome TEXT NOT NULL,
        payload TEXT
    );
    CREATE INDEX callbacks_by_run ON callbacks (run_id);
    CREATE TABLE notifications (
        run_id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        secret TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        due_time DOUBLE PRECISION
    );
    CREATE INDEX notifications_pending ON notifications (state) WHERE state = 'PENDING';
    """,
    # pause: recovery reads PAUSED runs too (RunState.PAUSED = 70), so the
    # partial index covers them.
    """
    DROP INDEX runs_unfinished;
    CREATE INDEX runs_unfinished ON runs (create_time) WHERE state IN (1, 2, 7, 70);
    """,
    # pause: a re-run names the run it re-runs (RerunRun).
    """
    ALTER TABLE runs ADD COLUMN rerun_of TEXT;
    """,
    # pgcluster: several servers on one database (cluster mode), as SQLite's: each
    # live server's lease, each unfinished run's owner and fencing epoch, commands
    # for a run's owner, a database-wide order of events (feed) that other servers
    # read, and the shared quotas (rate buckets, concurrency leases) and breakers.
    """
    CREATE TABLE cluster_servers (
        server_id TEXT PRIMARY KEY,
        expire_time DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE run_owners (
        run_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        epoch BIGINT NOT NULL
    );
    CREATE INDEX run_owners_by_owner ON run_owners (owner);
    CREATE TABLE run_commands (
        id BIGSERIAL PRIMARY KEY,
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        create_time DOUBLE PRECISION NOT NULL,
        done BOOLEAN NOT NULL DEFAULT FALSE,
        result TEXT
    );
    CREATE INDEX run_commands_pending ON run_commands (run_id) WHERE NOT done;
    ALTER TABLE events ADD COLUMN feed BIGINT;
    CREATE INDEX events_by_feed ON events (feed) WHERE feed IS NOT NULL;
    CREATE TABLE quota_buckets (
        name TEXT PRIMARY KEY,
        tokens DOUBLE PRECISION NOT NULL,
        update_time DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE quota_leases (
        id TEXT NOT NULL,
        name TEXT NOT NULL,
        server_id TEXT NOT NULL,
        PRIMARY KEY (id, name)
    );
    CREATE INDEX quota_leases_by_name ON quota_leases (name);
    CREATE TABLE breaker_states (
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        changed_time DOUBLE PRECISION NOT NULL,
        probe_expire DOUBLE PRECISION,
        PRIMARY KEY (tenant, name)
    );
    """,
    # child: child runs (Step.workflow) link to their parent run and step.
    """
    ALTER TABLE runs ADD COLUMN parent_run_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN parent_step_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX runs_by_parent ON runs (parent_run_id, create_time) WHERE parent_run_id <> '';
    """,
    # sched: schedules and their fires, as in podium.store.sqlite.schema.
    """
    CREATE TABLE schedules (
        tenant TEXT NOT NULL,
        schedule_id TEXT NOT NULL,
        body TEXT NOT NULL,
        paused BOOLEAN NOT NULL,
        next_fire DOUBLE PRECISION,
        PRIMARY KEY (tenant, schedule_id)
    );
    CREATE INDEX schedules_due ON schedules (next_fire) WHERE NOT paused;
    CREATE TABLE schedule_fires (
        schedule_id TEXT NOT NULL,
        nominal_time DOUBLE PRECISION NOT NULL,
        outcome TEXT NOT NULL,
        run_id TEXT NOT NULL,
        time DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (schedule_id, nominal_time)
    );
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
    );
    """,
    # child2: as SQLite's: RerunRuns calls made with a request id, with the
    # originals their filter chose (a JSON list).
    """
    CREATE TABLE rerun_batches (
        tenant TEXT NOT NULL,
        request_id TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        originals TEXT NOT NULL,
        time DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (tenant, request_id)
    );
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
    );
    CREATE TABLE relay_tasks (
        id BIGSERIAL PRIMARY KEY,
        run_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        item INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        owner TEXT NOT NULL,
        epoch BIGINT NOT NULL,
        queue TEXT NOT NULL,
        agent TEXT NOT NULL,
        tenant TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL,
        holder TEXT,
        claim_time DOUBLE PRECISION,
        cancel BOOLEAN NOT NULL DEFAULT FALSE,
        outcome TEXT,
        create_time DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX relay_tasks_pending ON relay_tasks (agent) WHERE state = 'PENDING';
    CREATE INDEX relay_tasks_by_holder ON relay_tasks (holder) WHERE state = 'CLAIMED';
    CREATE INDEX relay_tasks_by_run ON relay_tasks (run_id, step_id, item);
    CREATE TABLE relay_calls (
        id BIGSERIAL PRIMARY KEY,
        task_id BIGINT NOT NULL,
        kind TEXT NOT NULL,
        request BYTEA NOT NULL,
        response BYTEA,
        create_time DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX relay_calls_by_task ON relay_calls (task_id);
    """,
]


async def migrate(conn: asyncpg.Connection) -> int:
    """Brings the schema up to date in one transaction; returns the resulting version."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = await conn.fetchval("SELECT version FROM schema_version")
        current = int(current or 0)
        if current > len(MIGRATIONS):
            raise RuntimeError(
                f"database schema version {current} is newer than this server ({len(MIGRATIONS)})"
            )
        for version in range(current + 1, len(MIGRATIONS) + 1):
            await conn.execute(MIGRATIONS[version - 1])
            await conn.execute("DELETE FROM schema_version")
            await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
    return len(MIGRATIONS)
