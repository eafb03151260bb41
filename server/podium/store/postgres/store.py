"""PostgreSQL persistence of the engine's RunStore port (podium.engine.ports):
the same tables, rows and semantics as the SQLite backend
(podium.store.sqlite.store), method for method, in PostgreSQL's SQL.

Reads go to the pool and see committed data only; writes go through the
group-commit writer (writer.py). One server per database: an advisory lock
held on a connection of its own for as long as the store is open (a second
server is refused at start), and that connection is pinged while serving: a
server that loses it (database down, network cut, connection killed) can no
longer be sure it is the only writer, so its writer fails for good (health
NOT_SERVING, writes UNAVAILABLE) and a restart resumes from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, TypeVar

import asyncpg

from podium.core.errors import PodiumError, Unavailable
from podium.core.model import (
    DEFAULT_TENANT,
    AttemptRecord,
    CallbackRecord,
    Event,
    ItemRecord,
    NotificationRecord,
    RerunBatchRecord,
    RunRecord,
    RunView,
    SignalRecord,
    StepRecord,
)
from podium.core.spec import WorkflowSpec, WorkflowVersion
from podium.core.states import UNFINISHED_RUN_STATES, EventType, RunState
from podium.store import codec
from podium.store.postgres import codec as pg_codec
from podium.store.postgres.connection import CONNECT_TIMEOUT, open_pool
from podium.store.postgres.errors import StoreOpenError
from podium.store.postgres.fence import PostgresFence
from podium.store.postgres.guarded import GuardedPool
from podium.store.postgres.schema import migrate
from podium.store.postgres.url import redact
from podium.store.postgres.writer import Writer

T = TypeVar("T")
log = logging.getLogger("podium.store")

# pg_try_advisory_lock key held by the server that owns the database ("podiumsv").
OWNER_LOCK = 0x706F6469756D7376
# Seconds between pings of the owner's connection.
PING_INTERVAL = 0.5


class PostgresStore:
    """The PostgreSQL backend of the engine's RunStore port (podium.engine.ports)."""

    def __init__(self, dsn: str, *, exclusive: bool = True, server_id: str = "") -> None:
        # exclusive: refuse to open a database another store holds (a server
        # does; the store contract suite opens two stores on one database).
        # server_id: cluster mode (several servers on the database): not
        # exclusive, run writes fenced by their owner and epoch (fence.py).
        self.dsn = dsn
        self.exclusive = exclusive and not server_id
        self.fence = PostgresFence(server_id) if server_id else None
        self.path = redact(dsn)  # what logs and errors name
        self._pool: asyncpg.Pool | None = None
        self._owner: asyncpg.Connection | None = None
        self._writer: Writer | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._creating = asyncio.Lock()

    @property
    def writer(self) -> Writer:
        assert self._writer is not None, "store is not open"
        return self._writer

    @property
    def pool(self) -> GuardedPool:
        """The pool of reads and claims: a lost database raises Unavailable."""
        assert self._pool is not None, "store is not open"
        return GuardedPool(self._pool, self.path)

    def commit_stats(self) -> tuple[int, int, float]:
        """Batches committed, rows in them and seconds spent committing, since
        open (zeros when closed): read by metrics."""
        writer = self._writer
        if writer is None:
            return (0, 0, 0.0)
        return (writer.commits, writer.committed_rows, writer.commit_seconds)

    async def open(self) -> None:
        """Connects, takes ownership, migrates; or raises StoreOpenError with a
        one-line reason and leaves nothing open."""
        try:
            await self._open()
        except StoreOpenError:
            await self.close()
            raise
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
            await self.close()
            raise StoreOpenError(f"cannot open database {self.path}: {error}") from error
        except BaseException:
            await self.close()
            raise

    async def _open(self) -> None:
        self._owner = await asyncpg.connect(self.dsn, timeout=CONNECT_TIMEOUT)
        if self.exclusive and not await self._owner.fetchval(
            "SELECT pg_try_advisory_lock($1)", OWNER_LOCK
        ):
            raise StoreOpenError(f"database {self.path} is in use by another podium server")
        await migrate(self._owner)
        self._pool = await open_pool(self.dsn)
        self._writer = Writer(self._pool, self.fence)
        self._writer.start()
        self._pinger = asyncio.create_task(self._ping(), name="podium-store-ping")

    async def _ping(self) -> None:
        owner = self._owner
        assert owner is not None
        while True:
            await asyncio.sleep(PING_INTERVAL)
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await owner.fetchval("SELECT 1")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
                self.writer.fail(
                    Unavailable(
                        f"lost the database {self.path}: {error or type(error).__name__}",
                        reason="STORAGE_UNAVAILABLE",
                    )
                )
                return

    def check(self) -> PodiumError | None:
        """Why the store can no longer be written, or None while it can."""
        return self.writer.failure

    backend = "postgresql"

    async def ping(self) -> None:
        """A trivial query on a connection of the pool (system status); what
        asyncpg raises when the database does not answer."""
        assert self._pool is not None, "store is not open"
        await self._pool.fetchval("SELECT 1")

    async def close(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
            self._pinger = None
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pool.close(), CONNECT_TIMEOUT)
            self._pool.terminate()
            self._pool = None
        if self._owner is not None:
            # Closing the session releases the advisory lock.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._owner.close(), CONNECT_TIMEOUT)
            self._owner.terminate()
            self._owner = None

    # -- group commit (see podium.store.group_commit) ------------------------------

    @property
    def batch_id(self) -> int:
        return self.writer.batch_id

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.writer.after_commit(callback)

    async def commit(self) -> None:
        await self.writer.commit()

    async def fetch(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        """Rows of a read of committed data."""
        return await self.pool.fetch(sql, *params)

    async def _fetch(self, sql: str, params: Sequence[Any], decode: Callable[[Any], T]) -> list[T]:
        return [decode(row) for row in await self.pool.fetch(sql, *params)]

    # -- workflows ------------------------------------------------------------------

    async def create_workflow(
        self,
        workflow_id: str,
        spec: WorkflowSpec,
        now: float,
        applied: bytes = b"",
        *,
        tenant: str = DEFAULT_TENANT,
    ) -> int:
        """Stores the next version of a workflow; durable when this returns."""
        # One create at a time: the version is read back after the commit, and
        # two creates sharing a batch would both read the later one.
        async with self._creating:
            self.writer.execute(
                "INSERT INTO workflows (tenant, workflow_id, version, spec, create_time, applied) "
                "SELECT $1::text, $2::text, COALESCE(MAX(version), 0) + 1, $3::text, $4::float8, "
                "$5::bytea FROM workflows "
                "WHERE tenant = $1 AND workflow_id = $2",
                (tenant, workflow_id, spec.model_dump_json(), now, applied or None),
            )
            await self.writer.commit()
            version = await self.pool.fetchval(
                "SELECT MAX(version) FROM workflows WHERE tenant = $1 AND workflow_id = $2",
                tenant,
                workflow_id,
            )
            return int(version)

    async def get_workflow(
        self, workflow_id: str, version: int = 0, *, tenant: str = DEFAULT_TENANT
    ) -> WorkflowVersion | None:
        """A version (latest when 0) of a workflow that is not deleted."""
        if version:
            rows = await self.fetch(
                f"SELECT {_WORKFLOW_COLUMNS} FROM workflows "
                "WHERE tenant = $1 AND workflow_id = $2 AND version = $3 AND deleted = 0",
                tenant,
                workflow_id,
                version,
            )
        else:
            rows = await self.fetch(
                f"SELECT {_WORKFLOW_COLUMNS} FROM workflows "
                "WHERE tenant = $1 AND workflow_id = $2 AND deleted = 0 "
                "ORDER BY version DESC LIMIT 1",
                tenant,
                workflow_id,
            )
        return _workflow(rows[0]) if rows else None

    async def get_workflow_version_any(
        self, workflow_id: str, version: int, *, tenant: str = DEFAULT_TENANT
    ) -> WorkflowVersion | None:
        """A version even if deleted: runs keep the version they are pinned to."""
        rows = await self.fetch(
            f"SELECT {_WORKFLOW_COLUMNS} FROM workflows "
            "WHERE tenant = $1 AND workflow_id = $2 AND version = $3",
            tenant,
            workflow_id,
            version,
        )
        return _workflow(rows[0]) if rows else None

    async def list_workflows(
        self, limit: int, after_id: str = "", *, tenant: str = DEFAULT_TENANT
    ) -> list[WorkflowVersion]:
        """Latest version of each live workflow of a tenant, by id, after `after_id`."""
        rows = await self.fetch(
            f"SELECT DISTINCT ON (workflow_id) {_WORKFLOW_COLUMNS} FROM workflows "
            "WHERE tenant = $1 AND deleted = 0 AND workflow_id > $2 "
            "ORDER BY workflow_id, version DESC LIMIT $3",
            tenant,
            after_id,
            limit,
        )
        return [_workflow(row) for row in rows]

    async def delete_workflow(self, workflow_id: str, *, tenant: str = DEFAULT_TENANT) -> bool:
        exists = await self.get_workflow(workflow_id, tenant=tenant)
        if exists is None:
            return False
        self.writer.execute(
            "UPDATE workflows SET deleted = 1 WHERE tenant = $1 AND workflow_id = $2",
            (tenant, workflow_id),
        )
        await self.writer.commit()
        return True

    # -- runs: writes (fire and forget; await commit() for durability) ---------------

    def put_run(self, run: RunRecord) -> None:
        self.writer.put_run(pg_codec.run_row(run))

    def put_step(self, run_id: str, step: StepRecord) -> None:
        self.writer.put_step(codec.step_row(run_id, step))

    def put_attempt(self, run_id: str, step_id: str, attempt: AttemptRecord) -> None:
        self.writer.put_attempt(codec.attempt_row(run_id, step_id, attempt))

    def put_event(self, event: Event) -> None:
        self.writer.put_event(codec.event_row(event))

    def put_item(self, run_id: str, step_id: str, item: ItemRecord) -> None:
        self.writer.put_item(codec.item_row(run_id, step_id, item))

    def put_cache(self, key: str, output: Any, expire_time: float) -> None:
        self.writer.execute(
            "INSERT INTO step_cache (key, output, expire_time) VALUES ($1, $2, $3) "
            "ON CONFLICT (key) DO UPDATE SET output = EXCLUDED.output, "
            "expire_time = EXCLUDED.expire_time",
            (pg_codec.text(key), codec.dumps(output), expire_time),
        )

    async def get_cache(self, key: str, now: float) -> tuple[bool, Any]:
        """(True, output) for a live entry, else (False, None)."""
        rows = await self.fetch(
            "SELECT output FROM step_cache WHERE key = $1 AND expire_time > $2",
            pg_codec.text(key),
            now,
        )
        return (True, json.loads(rows[0][0])) if rows else (False, None)

    async def items_of(self, run_id: str, step_id: str) -> list[ItemRecord]:
        return await self._fetch(
            f"SELECT {codec.ITEM_COLUMNS} FROM items WHERE run_id = $1 AND step_id = $2 "
            "ORDER BY item",
            (run_id, step_id),
            codec.item_from_row,
        )

    # -- runs: reads ------------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunView | None:
        # One snapshot for the run, its steps and their attempts.
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            row = await conn.fetchrow(
                f"SELECT {codec.RUN_COLUMNS} FROM runs WHERE run_id = $1", run_id
            )
            if row is None:
                return None
            steps = await conn.fetch(
                f"SELECT {codec.STEP_COLUMNS} FROM steps WHERE run_id = $1 ORDER BY position",
                run_id,
            )
            attempts = await conn.fetch(
                f"SELECT {codec.ATTEMPT_COLUMNS} FROM attempts WHERE run_id = $1 "
                "ORDER BY step_id, item, number",
                run_id,
            )
            # The run record is rewritten when the run changes state, not for every
            # event: a run read back before it resumes (a restart) says the sequence
            # its events reached, as it did before the restart.
            events_reached = await conn.fetchval(
                "SELECT COALESCE(MAX(sequence), 0) FROM events WHERE run_id = $1", run_id
            )
        run = codec.run_from_row(row)
        run.last_sequence = max(run.last_sequence, int(events_reached))
        records = [codec.step_from_row(step_row) for step_row in steps]
        by_id = {step.step_id: step for step in records}
        for attempt_row in attempts:
            step = by_id.get(attempt_row[1])
            if step is not None:
                step.attempts.append(codec.attempt_from_row(attempt_row))
        return RunView(run, records)

    async def run_tenant(self, run_id: str) -> str | None:
        tenant = await self.pool.fetchval("SELECT tenant FROM runs WHERE run_id = $1", run_id)
        return None if tenant is None else str(tenant)

    async def run_status(self, run_id: str) -> tuple[RunState, int] | None:
        rows = await self.fetch("SELECT state, last_sequence FROM runs WHERE run_id = $1", run_id)
        return (RunState(rows[0][0]), int(rows[0][1])) if rows else None

    async def find_run_by_request_id(
        self, request_id: str, *, tenant: str = DEFAULT_TENANT
    ) -> RunRecord | None:
        runs = await self._fetch(
            f"SELECT {codec.RUN_COLUMNS} FROM runs WHERE tenant = $1 AND request_id = $2",
            (tenant, pg_codec.text(request_id)),
            codec.run_from_row,
        )
        return runs[0] if runs else None

    async def list_runs(
        self,
        limit: int,
        *,
        after: tuple[float, str] | None = None,
        workflow_id: str = "",
        states: Iterable[RunState] = (),
        labels: dict[str, str] | None = None,
        tenant: str = DEFAULT_TENANT,
        parent_run_id: str = "",
    ) -> list[RunRecord]:
        """A tenant's runs newest first (create_time, then run_id), after the `after` key."""
        params: list[Any] = [tenant]

        def param(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        where: list[str] = ["tenant = $1"]
        if after is not None:
            # A row comparison: the index on (create_time DESC, run_id DESC) serves it.
            where.append(f"(create_time, run_id) < ({param(after[0])}, {param(after[1])})")
        if workflow_id:
            where.append(f"workflow_id = {param(workflow_id)}")
        if parent_run_id:
            where.append(f"parent_run_id = {param(parent_run_id)}")
        state_values = [int(s) for s in states]
        if state_values:
            where.append(f"state = ANY({param(state_values)}::integer[])")
        if labels:
            where.append(f"labels_filter @> {param(pg_codec.labels_filter(labels))}::jsonb")
        return await self._fetch(
            f"SELECT {codec.RUN_COLUMNS} FROM runs WHERE {' AND '.join(where)} "
            f"ORDER BY create_time DESC, run_id DESC LIMIT {param(limit)}",
            params,
            codec.run_from_row,
        )

    async def unfinished_run_ids(self) -> list[str]:
        # Literal states, as in the partial index runs_unfinished (schema.py).
        rows = await self.fetch(
            f"SELECT run_id FROM runs WHERE state IN {_UNFINISHED} ORDER BY create_time"
        )
        return [row[0] for row in rows]

    async def unfinished_runs(
        self, limit: int, *, after: tuple[float, str] | None = None
    ) -> list[RunView]:
        # One snapshot: a batch of runs with their steps, attempts and the
        # sequences their events reached, in four queries whatever the batch.
        where, params = f"state IN {_UNFINISHED}", list[Any]()
        if after is not None:
            where += " AND (create_time > $1 OR (create_time = $1 AND run_id > $2))"
            params += [after[0], after[1]]
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = await conn.fetch(
                f"SELECT {codec.RUN_COLUMNS} FROM runs WHERE {where} "
                f"ORDER BY create_time, run_id LIMIT ${len(params) + 1}",
                *params,
                limit,
            )
            if not rows:
                return []
            runs = [codec.run_from_row(row) for row in rows]
            ids = [run.run_id for run in runs]
            step_rows = await conn.fetch(
                f"SELECT {codec.STEP_COLUMNS} FROM steps WHERE run_id = ANY($1::text[]) "
                "ORDER BY run_id, position",
                ids,
            )
            attempt_rows = await conn.fetch(
                f"SELECT {codec.ATTEMPT_COLUMNS} FROM attempts "
                "WHERE run_id = ANY($1::text[]) ORDER BY run_id, step_id, item, number",
                ids,
            )
            sequences = {
                row[0]: int(row[1])
                for row in await conn.fetch(
                    "SELECT run_id, MAX(sequence) FROM events "
                    "WHERE run_id = ANY($1::text[]) GROUP BY run_id",
                    ids,
                )
            }
        steps: dict[str, list[StepRecord]] = {run_id: [] for run_id in ids}
        by_key: dict[tuple[str, str], StepRecord] = {}
        for row in step_rows:
            step = codec.step_from_row(row)
            steps[row[0]].append(step)
            by_key[row[0], step.step_id] = step
        for row in attempt_rows:
            owner = by_key.get((row[0], row[1]))
            if owner is not None:
                owner.attempts.append(codec.attempt_from_row(row))
        for run in runs:
            run.last_sequence = max(run.last_sequence, sequences.get(run.run_id, 0))
        return [RunView(run, steps[run.run_id]) for run in runs]

    async def finished_runs_before(self, cutoff: float, limit: int) -> list[str]:
        """Ids of runs in a final state that ended before `cutoff`, oldest first."""
        rows = await self.fetch(
            "SELECT run_id FROM runs WHERE end_time IS NOT NULL AND end_time < $1 "
            "AND state = ANY($2::integer[]) ORDER BY end_time, run_id LIMIT $3",
            cutoff,
            _final_states(),
            limit,
        )
        return [row[0] for row in rows]

    async def delete_runs(self, run_ids: Sequence[str]) -> int:
        """Deletes runs with their steps, attempts and events in one transaction;
        how many existed."""
        if not run_ids:
            return 0
        # Flush first: the writer applies statements before the batched upserts,
        # so a late write of one of these runs sharing the DELETEs' batch would
        # resurrect a half of it.
        await self.writer.commit()
        existing = await self.fetch(
            "SELECT run_id FROM runs WHERE run_id = ANY($1::text[])", list(run_ids)
        )
        if not existing:
            return 0
        ids = [row[0] for row in existing]
        tables = (
            "events",
            "items",
            "attempts",
            "steps",
            "signals",
            "callbacks",
            "notifications",
            "run_owners",
            "run_commands",
        )
        for table in (*tables, "runs"):
            self.writer.execute(f"DELETE FROM {table} WHERE run_id = ANY($1::text[])", (ids,))
        await self.writer.commit()
        return len(ids)

    async def delete_rerun_batches_before(self, cutoff: float) -> int:
        # The originals are a JSON list (TEXT): each element looked up in runs.
        rows = await self.fetch(
            "SELECT tenant, request_id FROM rerun_batches b WHERE b.time < $1 AND NOT EXISTS "
            "(SELECT 1 FROM json_array_elements_text(b.originals::json) AS o(run_id) "
            "JOIN runs r ON r.run_id = o.run_id)",
            cutoff,
        )
        for row in rows:
            self.writer.execute(
                "DELETE FROM rerun_batches WHERE tenant = $1 AND request_id = $2",
                (row[0], row[1]),
            )
        if rows:
            await self.writer.commit()
        return len(rows)

    # -- signals, callbacks and completion notifications ------------------------

    def put_rerun_batch(self, batch: RerunBatchRecord) -> None:
        self.writer.execute(
            "INSERT INTO rerun_batches (tenant, request_id, request_hash, originals, time) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, request_id) DO NOTHING",
            (
                pg_codec.text(batch.tenant),
                pg_codec.text(batch.request_id),
                batch.request_hash,
                json.dumps(batch.originals),
                batch.time,
            ),
        )

    async def get_rerun_batch(self, request_id: str, *, tenant: str) -> RerunBatchRecord | None:
        found = await self._fetch(
            "SELECT tenant, request_id, request_hash, originals, time FROM rerun_batches "
            "WHERE tenant = $1 AND request_id = $2",
            (tenant, pg_codec.text(request_id)),
            _rerun_batch,
        )
        return found[0] if found else None

    def put_signal(self, signal: SignalRecord) -> None:
        self.writer.execute(
            "INSERT INTO signals (run_id, position, name, payload, time, request_id, consumed_by) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (run_id, position) "
            "DO UPDATE SET consumed_by = excluded.consumed_by",
            (
                signal.run_id,
                signal.position,
                pg_codec.text(signal.name),
                codec.dumps(signal.payload),
                signal.time,
                pg_codec.text(signal.request_id) if signal.request_id else None,
                pg_codec.text(signal.consumed_by),
            ),
        )

    async def signals_of(self, run_id: str) -> list[SignalRecord]:
        return await self._fetch(
            "SELECT run_id, position, name, payload, time, request_id, consumed_by FROM signals "
            "WHERE run_id = $1 ORDER BY position",
            (run_id,),
            _signal,
        )

    async def signals_of_runs(self, run_ids: Sequence[str]) -> dict[str, list[SignalRecord]]:
        found: dict[str, list[SignalRecord]] = {}
        for signal in await self._fetch(
            "SELECT run_id, position, name, payload, time, request_id, consumed_by FROM signals "
            "WHERE run_id = ANY($1::text[]) ORDER BY run_id, position",
            (list(run_ids),),
            _signal,
        ):
            found.setdefault(signal.run_id, []).append(signal)
        return found

    def put_callback(self, callback: CallbackRecord) -> None:
        self.writer.execute(
            "INSERT INTO callbacks (token, run_id, step_id, tenant, issue_time, outcome, payload) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (token) "
            "DO UPDATE SET outcome = excluded.outcome, payload = excluded.payload",
            (
                callback.token,
                callback.run_id,
                callback.step_id,
                callback.tenant,
                callback.issue_time,
                callback.outcome,
                codec.dumps_optional(callback.payload),
            ),
        )

    async def get_callback(self, token: str) -> CallbackRecord | None:
        found = await self._fetch(
            f"SELECT {_CALLBACK_COLUMNS} FROM callbacks WHERE token = $1",
            (pg_codec.text(token),),
            _callback,
        )
        return found[0] if found else None

    async def callbacks_of(self, run_id: str) -> list[CallbackRecord]:
        return await self._fetch(
            f"SELECT {_CALLBACK_COLUMNS} FROM callbacks WHERE run_id = $1 ORDER BY issue_time",
            (run_id,),
            _callback,
        )

    async def callbacks_of_runs(self, run_ids: Sequence[str]) -> dict[str, list[CallbackRecord]]:
        found: dict[str, list[CallbackRecord]] = {}
        for callback in await self._fetch(
            f"SELECT {_CALLBACK_COLUMNS} FROM callbacks WHERE run_id = ANY($1::text[]) "
            "ORDER BY run_id, issue_time",
            (list(run_ids),),
            _callback,
        ):
            found.setdefault(callback.run_id, []).append(callback)
        return found

    def put_notification(self, notification: NotificationRecord) -> None:
        self.writer.execute(
            "INSERT INTO notifications (run_id, url, secret, state, attempts, due_time) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id) DO UPDATE SET "
            "state = excluded.state, attempts = excluded.attempts, due_time = excluded.due_time",
            (
                notification.run_id,
                pg_codec.text(notification.url),
                pg_codec.text(notification.secret),
                notification.state,
                notification.attempts,
                notification.due_time,
            ),
        )

    async def get_notification(self, run_id: str) -> NotificationRecord | None:
        found = await self._fetch(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE run_id = $1",
            (run_id,),
            _notification,
        )
        return found[0] if found else None

    async def notifications_of(self, run_ids: Sequence[str]) -> dict[str, NotificationRecord]:
        found = await self._fetch(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE run_id = ANY($1::text[])",
            (list(run_ids),),
            _notification,
        )
        return {notification.run_id: notification for notification in found}

    async def pending_notifications(self) -> list[NotificationRecord]:
        return await self._fetch(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE state = 'PENDING' "
            "ORDER BY due_time, run_id",
            (),
            _notification,
        )

    async def read_events(self, run_id: str, after_sequence: int, limit: int) -> list[Event]:
        return await self._fetch(
            "SELECT run_id, sequence, time, type, body FROM events "
            "WHERE run_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
            (run_id, after_sequence, limit),
            codec.event_from_row,
        )

    async def read_events_of_types(
        self, run_id: str, types: Collection[EventType], limit: int
    ) -> list[Event]:
        wanted = sorted({int(t) for t in types})
        if not wanted:
            return []
        return await self._fetch(
            "SELECT run_id, sequence, time, type, body FROM events "
            "WHERE run_id = $1 AND type = ANY($2::integer[]) ORDER BY sequence LIMIT $3",
            (run_id, wanted, limit),
            codec.event_from_row,
        )

    async def last_sequence(self, run_id: str) -> int:
        value = await self.pool.fetchval(
            "SELECT COALESCE(MAX(sequence), 0) FROM events WHERE run_id = $1", run_id
        )
        return int(value)


def _rerun_batch(row: Any) -> RerunBatchRecord:
    return RerunBatchRecord(
        tenant=row[0],
        request_id=row[1],
        request_hash=row[2],
        originals=list(json.loads(row[3])),
        time=row[4],
    )


def _signal(row: Any) -> SignalRecord:
    return SignalRecord(
        run_id=row[0],
        position=row[1],
        name=row[2],
        payload=json.loads(row[3]),
        time=row[4],
        request_id=row[5] or "",
        consumed_by=row[6],
    )


_CALLBACK_COLUMNS = "token, run_id, step_id, tenant, issue_time, outcome, payload"


def _callback(row: Any) -> CallbackRecord:
    return CallbackRecord(
        token=row[0],
        run_id=row[1],
        step_id=row[2],
        tenant=row[3],
        issue_time=row[4],
        outcome=row[5],
        payload=None if row[6] is None else json.loads(row[6]),
    )


_NOTIFICATION_COLUMNS = "run_id, url, secret, state, attempts, due_time"


def _notification(row: Any) -> NotificationRecord:
    return NotificationRecord(
        run_id=row[0], url=row[1], secret=row[2], state=row[3], attempts=row[4], due_time=row[5]
    )


_UNFINISHED = str(tuple(int(state) for state in UNFINISHED_RUN_STATES))


def _final_states() -> list[int]:
    # Derived from RunState, so that a new final state is pruned without edits here.
    return [int(state) for state in RunState if state.is_final]


_WORKFLOW_COLUMNS = "workflow_id, version, spec, create_time, applied, tenant"


def _workflow(row: Any) -> WorkflowVersion:
    return WorkflowVersion(
        workflow_id=row[0],
        version=row[1],
        spec=WorkflowSpec.model_validate_json(row[2]),
        create_time=row[3],
        applied=bytes(row[4]) if row[4] is not None else b"",
        tenant=row[5],
    )
