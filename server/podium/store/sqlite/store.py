"""SQLite persistence: the only module that speaks SQL.

One writer connection (see writer.py) and one reader connection, each owned
by a thread of its own (connection.py); WAL lets the reader see committed data
while the writer works. An in-memory database has a single connection: reads
queue on the writer's thread between batches, and a batch is one call there,
so a read never sees one half done.

Rows are decoded into records on the connection's thread too: reading a large
run or a page of events does not hold the event loop.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import sqlite3
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

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
from podium.store.sqlite.connection import ThreadConnection
from podium.store.sqlite.errors import StoreOpenError
from podium.store.sqlite.fence import RunFence
from podium.store.sqlite.schema import migrate
from podium.store.sqlite.writer import Writer

T = TypeVar("T")

MEMORY = ":memory:"
# What a commit survives once acknowledged: FULL syncs the log at every commit
# (power loss included); NORMAL leaves it to the OS until a checkpoint (a
# killed process loses nothing, a power loss may lose the last commits).
SYNCHRONOUS_MODES = ("FULL", "NORMAL")
BUSY_MS = 5000
CLUSTER_BUSY_MS = 60000


def _file_identity(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino)


class SqliteStore:
    """The SQLite backend of the engine's RunStore port (podium.engine.ports)."""

    def __init__(self, path: str, *, synchronous: str = "FULL", server_id: str = "") -> None:
        """`server_id` (cluster mode, several servers on one file): run writes are
        fenced by their owner and epoch (fence.py)."""
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")
        if server_id and path == MEMORY:
            raise ValueError("cluster mode needs a database file, not :memory:")
        self.path = path
        self.synchronous = synchronous
        self.fence = RunFence(server_id) if server_id else None
        self._writer_conn: ThreadConnection | None = None
        self._reader_conn: ThreadConnection | None = None
        self._writer: Writer | None = None
        self._creating = asyncio.Lock()
        self._identity: tuple[int, int] | None = None

    @property
    def writer(self) -> Writer:
        assert self._writer is not None, "store is not open"
        return self._writer

    def commit_stats(self) -> tuple[int, int, float]:
        """Batches committed, rows in them and seconds spent committing, since
        open (zeros when closed): read by metrics."""
        writer = self._writer
        if writer is None:
            return (0, 0, 0.0)
        return (writer.commits, writer.committed_rows, writer.commit_seconds)

    async def open(self) -> None:
        """Opens the database (creating it), or raises StoreOpenError with a
        one-line reason; a failed open leaves nothing running (a connection
        left open keeps its thread, and the process, alive)."""
        memory = self.path == MEMORY
        if not memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            await self._open(memory)
        except sqlite3.Error as error:
            await self.close()
            raise StoreOpenError(f"cannot open database {self.path}: {error}") from error
        except BaseException:
            await self.close()
            raise

    async def _open(self, memory: bool) -> None:
        writer = ThreadConnection(self.path, "podium-store-writer")
        self._writer_conn = writer
        await writer.open()
        # Several processes on one file wait for each other's write lock: in
        # cluster mode a longer wait, so that a burst elsewhere never fails a batch.
        busy_ms = CLUSTER_BUSY_MS if self.fence is not None else BUSY_MS
        lock_path = self.path + ".migrate" if self.fence is not None else None
        await writer.call(_prepare_writer, self.synchronous, busy_ms, lock_path)
        if memory:
            self._reader_conn = writer
        else:
            reader = ThreadConnection(self.path, "podium-store-reader")
            self._reader_conn = reader
            await reader.open()
            await reader.call(_prepare_reader, busy_ms)
        self._writer = Writer(writer, self.fence)
        self._writer.start()
        if not memory:
            self._identity = _file_identity(self.path)

    def check(self) -> PodiumError | None:
        """Why the store can no longer be written, or None while it can.

        Deleting or replacing the database file under a running server goes
        unnoticed by SQLite (it keeps writing to the unlinked inode, and all of
        it is lost at the next start), so the file is checked here and a lost
        file fails the writer: no write is acknowledged after that."""
        writer = self.writer
        lost = (
            writer.failure is None
            and self._identity is not None
            and _file_identity(self.path) != self._identity
        )
        if lost:
            writer.fail(
                Unavailable(
                    f"the database file {self.path} was deleted or replaced while serving",
                    reason="STORAGE_LOST",
                )
            )
        return writer.failure

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.close()
        if self._reader_conn is not None and self._reader_conn is not self._writer_conn:
            await self._reader_conn.close()
        if self._writer_conn is not None:
            await self._writer_conn.close()
        self._writer = self._reader_conn = self._writer_conn = None

    # -- group commit (see writer.py) ----------------------------------------

    @property
    def batch_id(self) -> int:
        return self.writer.batch_id

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.writer.after_commit(callback)

    async def commit(self) -> None:
        await self.writer.commit()

    async def transact(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(conn, *args)` in a transaction of its own (BEGIN IMMEDIATE: the
        write lock, against every connection to the file) on the writer's
        connection, between its batches; rolled back if `fn` raises."""
        writer = self._writer_conn
        assert writer is not None, "store is not open"
        return await writer.call(_transact, fn, args)

    def _read(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """`fn(conn, *args)` on the reader's thread (the writer's, in memory)."""
        reader = self._reader_conn
        assert reader is not None, "store is not open"
        return reader.call(fn, *args)

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await self._read(_fetchall, sql, params)

    backend = "sqlite"

    async def ping(self) -> None:
        """A trivial read on the reader's connection (system status)."""
        await self._fetchall("SELECT 1")

    async def _fetch(self, sql: str, params: Sequence[Any], decode: Callable[[Any], T]) -> list[T]:
        """Rows decoded on the reader's thread."""
        return await self._read(_fetch_decoded, sql, params, decode)

    # -- workflows --------------------------------------------------------

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
            return await self._create_workflow(tenant, workflow_id, spec, now, applied)

    async def _create_workflow(
        self, tenant: str, workflow_id: str, spec: WorkflowSpec, now: float, applied: bytes
    ) -> int:
        self.writer.execute(
            "INSERT INTO workflows (tenant, workflow_id, version, spec, create_time, applied) "
            "SELECT ?, ?, COALESCE(MAX(version), 0) + 1, ?, ?, ? FROM workflows "
            "WHERE tenant = ? AND workflow_id = ?",
            (
                tenant,
                workflow_id,
                spec.model_dump_json(),
                now,
                applied or None,
                tenant,
                workflow_id,
            ),
        )
        await self.writer.commit()
        rows = await self._fetchall(
            "SELECT MAX(version) FROM workflows WHERE tenant = ? AND workflow_id = ?",
            (tenant, workflow_id),
        )
        return int(rows[0][0])

    async def get_workflow(
        self, workflow_id: str, version: int = 0, *, tenant: str = DEFAULT_TENANT
    ) -> WorkflowVersion | None:
        """A version (latest when 0) of a workflow that is not deleted."""
        if version:
            rows = await self._fetchall(
                f"SELECT {_WORKFLOW_COLUMNS} FROM workflows "
                "WHERE tenant = ? AND workflow_id = ? AND version = ? AND deleted = 0",
                (tenant, workflow_id, version),
            )
        else:
            rows = await self._fetchall(
                f"SELECT {_WORKFLOW_COLUMNS} FROM workflows "
                "WHERE tenant = ? AND workflow_id = ? AND deleted = 0 "
                "ORDER BY version DESC LIMIT 1",
                (tenant, workflow_id),
            )
        return _workflow(rows[0]) if rows else None

    async def get_workflow_version_any(
        self, workflow_id: str, version: int, *, tenant: str = DEFAULT_TENANT
    ) -> WorkflowVersion | None:
        """A version even if deleted: runs keep the version they are pinned to."""
        rows = await self._fetchall(
            f"SELECT {_WORKFLOW_COLUMNS} FROM workflows "
            "WHERE tenant = ? AND workflow_id = ? AND version = ?",
            (tenant, workflow_id, version),
        )
        return _workflow(rows[0]) if rows else None

    async def list_workflows(
        self, limit: int, after_id: str = "", *, tenant: str = DEFAULT_TENANT
    ) -> list[WorkflowVersion]:
        """Latest version of each live workflow of a tenant, by id, after `after_id`."""
        rows = await self._fetchall(
            "SELECT w.workflow_id, w.version, w.spec, w.create_time, w.applied, w.tenant "
            "FROM workflows w "
            "JOIN (SELECT workflow_id, MAX(version) AS version FROM workflows "
            "      WHERE tenant = ? AND deleted = 0 AND workflow_id > ? "
            "      GROUP BY workflow_id) latest "
            "ON w.tenant = ? AND w.workflow_id = latest.workflow_id "
            "AND w.version = latest.version "
            "ORDER BY w.workflow_id LIMIT ?",
            (tenant, after_id, tenant, limit),
        )
        return [_workflow(row) for row in rows]

    async def delete_workflow(self, workflow_id: str, *, tenant: str = DEFAULT_TENANT) -> bool:
        exists = await self.get_workflow(workflow_id, tenant=tenant)
        if exists is None:
            return False
        self.writer.execute(
            "UPDATE workflows SET deleted = 1 WHERE tenant = ? AND workflow_id = ?",
            (tenant, workflow_id),
        )
        await self.writer.commit()
        return True

    # -- runs: writes (fire and forget; await writer.commit() for durability)

    def put_run(self, run: RunRecord) -> None:
        self.writer.put_run(codec.run_row(run))

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
            "INSERT INTO step_cache (key, output, expire_time) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET output = excluded.output, "
            "expire_time = excluded.expire_time",
            (key, codec.dumps(output), expire_time),
        )

    async def get_cache(self, key: str, now: float) -> tuple[bool, Any]:
        """(True, output) for a live entry, else (False, None)."""
        rows = await self._fetchall(
            "SELECT output FROM step_cache WHERE key = ? AND expire_time > ?", (key, now)
        )
        return (True, json.loads(rows[0][0])) if rows else (False, None)

    async def items_of(self, run_id: str, step_id: str) -> list[ItemRecord]:
        return await self._fetch(
            f"SELECT {codec.ITEM_COLUMNS} FROM items WHERE run_id = ? AND step_id = ? "
            "ORDER BY item",
            (run_id, step_id),
            codec.item_from_row,
        )

    # -- runs: reads -------------------------------------------------------

    async def get_run(self, run_id: str) -> RunView | None:
        # One call: the run, its steps and attempts read in one snapshot and
        # decoded off the event loop (a 10,000-item run has 10,000 attempts).
        return await self._read(_read_run, run_id)

    async def run_tenant(self, run_id: str) -> str | None:
        rows = await self._fetchall("SELECT tenant FROM runs WHERE run_id = ?", (run_id,))
        return str(rows[0][0]) if rows else None

    async def run_status(self, run_id: str) -> tuple[RunState, int] | None:
        rows = await self._fetchall(
            "SELECT state, last_sequence FROM runs WHERE run_id = ?", (run_id,)
        )
        return (RunState(rows[0][0]), int(rows[0][1])) if rows else None

    async def find_run_by_request_id(
        self, request_id: str, *, tenant: str = DEFAULT_TENANT
    ) -> RunRecord | None:
        runs = await self._fetch(
            f"SELECT {codec.RUN_COLUMNS} FROM runs WHERE tenant = ? AND request_id = ?",
            (tenant, request_id),
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
        where: list[str] = ["tenant = ?"]
        params: list[Any] = [tenant]
        if after is not None:
            where.append("(create_time < ? OR (create_time = ? AND run_id < ?))")
            params += [after[0], after[0], after[1]]
        if workflow_id:
            where.append("workflow_id = ?")
            params.append(workflow_id)
        if parent_run_id:
            where.append("parent_run_id = ?")
            params.append(parent_run_id)
        state_values = [int(s) for s in states]
        if state_values:
            where.append(f"state IN ({', '.join('?' for _ in state_values)})")
            params += state_values
        for key, value in (labels or {}).items():
            # json_each compares keys as stored: a JSON path would need
            # escaping that SQLite's path syntax does not offer for every key.
            where.append(
                "EXISTS (SELECT 1 FROM json_each(runs.labels) WHERE key = ? AND value = ?)"
            )
            params += [key, value]
        return await self._fetch(
            f"SELECT {codec.RUN_COLUMNS} FROM runs WHERE {' AND '.join(where)} "
            "ORDER BY create_time DESC, run_id DESC LIMIT ?",
            [*params, limit],
            codec.run_from_row,
        )

    async def unfinished_run_ids(self) -> list[str]:
        rows = await self._fetchall(
            "SELECT run_id FROM runs WHERE state IN (?, ?, ?, ?) ORDER BY create_time",
            tuple(int(state) for state in UNFINISHED_RUN_STATES),
        )
        return [row[0] for row in rows]

    async def unfinished_runs(
        self, limit: int, *, after: tuple[float, str] | None = None
    ) -> list[RunView]:
        # One call, one snapshot: a batch of runs with their steps and
        # attempts read and decoded off the event loop (a query per run made a
        # restart over 1,000 runs take seconds).
        return await self._read(_read_unfinished_runs, limit, after)

    async def finished_runs_before(self, cutoff: float, limit: int) -> list[str]:
        """Ids of runs in a final state that ended before `cutoff`, oldest first."""
        finals = _final_states()
        rows = await self._fetchall(
            "SELECT run_id FROM runs WHERE end_time IS NOT NULL AND end_time < ? "
            f"AND state IN ({', '.join('?' for _ in finals)}) "
            "ORDER BY end_time, run_id LIMIT ?",
            [cutoff, *finals, limit],
        )
        return [row[0] for row in rows]

    async def delete_runs(self, run_ids: Sequence[str]) -> int:
        """Deletes runs with their steps, attempts and events in one transaction;
        how many existed. At most a few hundred ids: each is an SQL parameter."""
        if not run_ids:
            return 0
        # Flush first: the writer applies statements before the batched upserts,
        # so a late write of one of these runs sharing the DELETEs' batch would
        # resurrect a half of it.
        await self.writer.commit()
        marks = ", ".join("?" for _ in run_ids)
        existing = await self._fetchall(
            f"SELECT run_id FROM runs WHERE run_id IN ({marks})", list(run_ids)
        )
        if not existing:
            return 0
        ids = tuple(row[0] for row in existing)
        marks = ", ".join("?" for _ in ids)
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
            self.writer.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", ids)
        await self.writer.commit()
        return len(ids)

    async def delete_rerun_batches_before(self, cutoff: float) -> int:
        # The originals are a JSON list: json_each looks them up in runs.
        rows = await self._fetchall(
            "SELECT tenant, request_id FROM rerun_batches b WHERE b.time < ? AND NOT EXISTS "
            "(SELECT 1 FROM json_each(b.originals) o JOIN runs r ON r.run_id = o.value)",
            (cutoff,),
        )
        for tenant, request_id in rows:
            self.writer.execute(
                "DELETE FROM rerun_batches WHERE tenant = ? AND request_id = ?",
                (tenant, request_id),
            )
        if rows:
            await self.writer.commit()
        return len(rows)

    async def read_events(self, run_id: str, after_sequence: int, limit: int) -> list[Event]:
        return await self._fetch(
            "SELECT run_id, sequence, time, type, body FROM events "
            "WHERE run_id = ? AND sequence > ? ORDER BY sequence LIMIT ?",
            (run_id, after_sequence, limit),
            codec.event_from_row,
        )

    async def read_events_of_types(
        self, run_id: str, types: Collection[EventType], limit: int
    ) -> list[Event]:
        wanted = sorted({int(t) for t in types})
        if not wanted:
            return []
        marks = ", ".join("?" * len(wanted))
        rows = await self._fetchall(
            "SELECT run_id, sequence, time, type, body FROM events "
            f"WHERE run_id = ? AND type IN ({marks}) ORDER BY sequence LIMIT ?",
            (run_id, *wanted, limit),
        )
        return [codec.event_from_row(row) for row in rows]

    # -- signals, callbacks and completion notifications ------------------------

    def put_rerun_batch(self, batch: RerunBatchRecord) -> None:
        self.writer.execute(
            "INSERT INTO rerun_batches (tenant, request_id, request_hash, originals, time) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, request_id) DO NOTHING",
            (
                batch.tenant,
                batch.request_id,
                batch.request_hash,
                json.dumps(batch.originals),
                batch.time,
            ),
        )

    async def get_rerun_batch(self, request_id: str, *, tenant: str) -> RerunBatchRecord | None:
        found = await self._fetch(
            "SELECT tenant, request_id, request_hash, originals, time FROM rerun_batches "
            "WHERE tenant = ? AND request_id = ?",
            (tenant, request_id),
            _rerun_batch,
        )
        return found[0] if found else None

    def put_signal(self, signal: SignalRecord) -> None:
        self.writer.execute(
            "INSERT INTO signals (run_id, position, name, payload, time, request_id, consumed_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, position) "
            "DO UPDATE SET consumed_by = excluded.consumed_by",
            (
                signal.run_id,
                signal.position,
                signal.name,
                codec.dumps(signal.payload),
                signal.time,
                signal.request_id or None,
                signal.consumed_by,
            ),
        )

    async def signals_of(self, run_id: str) -> list[SignalRecord]:
        return await self._fetch(
            "SELECT run_id, position, name, payload, time, request_id, consumed_by FROM signals "
            "WHERE run_id = ? ORDER BY position",
            (run_id,),
            _signal,
        )

    async def signals_of_runs(self, run_ids: Sequence[str]) -> dict[str, list[SignalRecord]]:
        found: dict[str, list[SignalRecord]] = {}
        for chunk in _chunks(run_ids):
            for signal in await self._fetch(
                "SELECT run_id, position, name, payload, time, request_id, consumed_by "
                f"FROM signals WHERE run_id IN ({_marks(chunk)}) ORDER BY run_id, position",
                chunk,
                _signal,
            ):
                found.setdefault(signal.run_id, []).append(signal)
        return found

    def put_callback(self, callback: CallbackRecord) -> None:
        self.writer.execute(
            "INSERT INTO callbacks (token, run_id, step_id, tenant, issue_time, outcome, payload) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (token) "
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
            f"SELECT {_CALLBACK_COLUMNS} FROM callbacks WHERE token = ?", (token,), _callback
        )
        return found[0] if found else None

    async def callbacks_of(self, run_id: str) -> list[CallbackRecord]:
        return await self._fetch(
            f"SELECT {_CALLBACK_COLUMNS} FROM callbacks WHERE run_id = ? ORDER BY issue_time",
            (run_id,),
            _callback,
        )

    async def callbacks_of_runs(self, run_ids: Sequence[str]) -> dict[str, list[CallbackRecord]]:
        found: dict[str, list[CallbackRecord]] = {}
        for chunk in _chunks(run_ids):
            for callback in await self._fetch(
                f"SELECT {_CALLBACK_COLUMNS} FROM callbacks WHERE run_id IN ({_marks(chunk)}) "
                "ORDER BY run_id, issue_time",
                chunk,
                _callback,
            ):
                found.setdefault(callback.run_id, []).append(callback)
        return found

    def put_notification(self, notification: NotificationRecord) -> None:
        self.writer.execute(
            "INSERT INTO notifications (run_id, url, secret, state, attempts, due_time) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET "
            "state = excluded.state, attempts = excluded.attempts, due_time = excluded.due_time",
            (
                notification.run_id,
                notification.url,
                notification.secret,
                notification.state,
                notification.attempts,
                notification.due_time,
            ),
        )

    async def get_notification(self, run_id: str) -> NotificationRecord | None:
        found = await self._fetch(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE run_id = ?",
            (run_id,),
            _notification,
        )
        return found[0] if found else None

    async def notifications_of(self, run_ids: Sequence[str]) -> dict[str, NotificationRecord]:
        found: dict[str, NotificationRecord] = {}
        for chunk in _chunks(run_ids):
            for notification in await self._fetch(
                f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications "
                f"WHERE run_id IN ({_marks(chunk)})",
                chunk,
                _notification,
            ):
                found[notification.run_id] = notification
        return found

    async def pending_notifications(self) -> list[NotificationRecord]:
        return await self._fetch(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE state = 'PENDING' "
            "ORDER BY due_time, run_id",
            (),
            _notification,
        )

    async def last_sequence(self, run_id: str) -> int:
        rows = await self._fetchall(
            "SELECT COALESCE(MAX(sequence), 0) FROM events WHERE run_id = ?", (run_id,)
        )
        return int(rows[0][0])


# Ids per `IN (...)` list: well under SQLite's limit of bound parameters.
IDS_PER_QUERY = 500


def _chunks(ids: Sequence[str]) -> Iterable[list[str]]:
    ids = list(ids)
    for start in range(0, len(ids), IDS_PER_QUERY):
        yield ids[start : start + IDS_PER_QUERY]


def _marks(ids: Sequence[str]) -> str:
    return ", ".join("?" for _ in ids)


def _prepare_writer(
    conn: sqlite3.Connection, synchronous: str, busy_ms: int, lock_path: str | None
) -> None:
    conn.execute(f"PRAGMA busy_timeout={busy_ms}")
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL (the default): a commit is on disk when StartRun returns, even
    # across a power loss; group commit amortises the fsync.
    conn.execute(f"PRAGMA synchronous={synchronous}")
    if lock_path is None:
        migrate(conn)
        return
    # Servers of a cluster may start together on a new file: one migrates, the
    # others then find the schema up to date (a blocking lock, held briefly).
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        migrate(conn)
    finally:
        os.close(fd)


def _prepare_reader(conn: sqlite3.Connection, busy_ms: int) -> None:
    conn.execute("PRAGMA query_only=1")
    conn.execute(f"PRAGMA busy_timeout={busy_ms}")


def _transact(conn: sqlite3.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn, *args)
    except BaseException:
        conn.rollback()
        raise
    conn.execute("COMMIT")
    return result


def _fetchall(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    return conn.execute(sql, params).fetchall()


def _fetch_decoded(
    conn: sqlite3.Connection, sql: str, params: Sequence[Any], decode: Callable[[Any], T]
) -> list[T]:
    return [decode(row) for row in conn.execute(sql, params)]


def _read_run(conn: sqlite3.Connection, run_id: str) -> RunView | None:
    conn.execute("BEGIN")  # one snapshot for the run and its steps
    try:
        row = conn.execute(
            f"SELECT {codec.RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        if row is None:
            return None
        run = codec.run_from_row(row)
        # The run record is rewritten when the run changes state, not for
        # every event: a run read back before it resumes (a restart) says
        # the sequence its events reached, as it did before the restart.
        (events_reached,) = conn.execute(
            "SELECT COALESCE(MAX(sequence), 0) FROM events WHERE run_id = ?", (run_id,)
        ).fetchone()
        run.last_sequence = max(run.last_sequence, int(events_reached))
        steps = [
            codec.step_from_row(step_row)
            for step_row in conn.execute(
                f"SELECT {codec.STEP_COLUMNS} FROM steps WHERE run_id = ? ORDER BY position",
                (run_id,),
            )
        ]
        by_id = {step.step_id: step for step in steps}
        for attempt_row in conn.execute(
            f"SELECT {codec.ATTEMPT_COLUMNS} FROM attempts WHERE run_id = ? "
            "ORDER BY step_id, item, number",
            (run_id,),
        ):
            step = by_id.get(attempt_row[1])
            if step is not None:
                step.attempts.append(codec.attempt_from_row(attempt_row))
        return RunView(run, steps)
    finally:
        conn.execute("COMMIT")


_UNFINISHED = tuple(int(state) for state in UNFINISHED_RUN_STATES)


def _read_unfinished_runs(
    conn: sqlite3.Connection, limit: int, after: tuple[float, str] | None
) -> list[RunView]:
    conn.execute("BEGIN")  # one snapshot for the runs, their steps, attempts and events
    try:
        where, params = "state IN (?, ?, ?, ?)", list[Any](_UNFINISHED)
        if after is not None:
            where += " AND (create_time > ? OR (create_time = ? AND run_id > ?))"
            params += [after[0], after[0], after[1]]
        runs = [
            codec.run_from_row(row)
            for row in conn.execute(
                f"SELECT {codec.RUN_COLUMNS} FROM runs WHERE {where} "
                "ORDER BY create_time, run_id LIMIT ?",
                [*params, limit],
            )
        ]
        if not runs:
            return []
        ids = [run.run_id for run in runs]
        marks = ", ".join("?" for _ in ids)
        steps: dict[str, list[StepRecord]] = {run_id: [] for run_id in ids}
        by_key: dict[tuple[str, str], StepRecord] = {}
        for row in conn.execute(
            f"SELECT {codec.STEP_COLUMNS} FROM steps WHERE run_id IN ({marks}) "
            "ORDER BY run_id, position",
            ids,
        ):
            step = codec.step_from_row(row)
            steps[row[0]].append(step)
            by_key[row[0], step.step_id] = step
        for row in conn.execute(
            f"SELECT {codec.ATTEMPT_COLUMNS} FROM attempts WHERE run_id IN ({marks}) "
            "ORDER BY run_id, step_id, item, number",
            ids,
        ):
            owner = by_key.get((row[0], row[1]))
            if owner is not None:
                owner.attempts.append(codec.attempt_from_row(row))
        sequences = dict(
            conn.execute(
                "SELECT run_id, MAX(sequence) FROM events "
                f"WHERE run_id IN ({marks}) GROUP BY run_id",
                ids,
            ).fetchall()
        )
        for run in runs:
            run.last_sequence = max(run.last_sequence, int(sequences.get(run.run_id, 0)))
        return [RunView(run, steps[run.run_id]) for run in runs]
    finally:
        conn.execute("COMMIT")


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
        applied=row[4] or b"",
        tenant=row[5],
    )


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
