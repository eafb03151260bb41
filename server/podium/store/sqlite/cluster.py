"""The SQLite backend of the engine's ClusterStore port: several `podium serve`
processes on one database file (cluster mode).

Leases and ownership changes are short transactions of their own on the
writer's connection (BEGIN IMMEDIATE: one writer at a time across processes);
run writes are fenced inside each batch (fence.py). Reads go through the
reader's connection and see committed data only.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from collections.abc import Callable
from typing import Any

from podium.core.model import Event
from podium.core.states import UNFINISHED_RUN_STATES
from podium.store import codec
from podium.store.sqlite.fence import RunFence
from podium.store.sqlite.store import SqliteStore

_UNFINISHED = tuple(int(state) for state in UNFINISHED_RUN_STATES)
_UNFINISHED_SQL = ", ".join(str(state) for state in _UNFINISHED)


class SqliteCluster:
    """ClusterStore (podium.engine.ports) over a SqliteStore opened with a server id."""

    def __init__(self, store: SqliteStore) -> None:
        if store.fence is None:
            raise ValueError("the store was not opened in cluster mode (no server id)")
        self._store = store
        self._fence: RunFence = store.fence

    @property
    def server_id(self) -> str:
        return self._fence.server_id

    def _write(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(conn, *args)` in a transaction of its own on the writer's thread."""
        writer_conn = self._store.writer._conn
        return writer_conn.call(_transaction, fn, *args)

    # -- leases ---------------------------------------------------------------------

    async def join(self, now: float, lease_seconds: float) -> list[str]:
        claimed: list[tuple[str, int]] = await self._write(
            _join, self.server_id, now + lease_seconds
        )
        return self._hold(claimed)

    async def renew(self, now: float, lease_seconds: float) -> None:
        await self._write(_renew, self.server_id, now + lease_seconds)

    async def leave(self) -> None:
        await self._store.commit()
        await self._write(_leave, self.server_id)

    async def take_over(self, now: float) -> list[str]:
        claimed: list[tuple[str, int]] = await self._write(_take_over, self.server_id, now)
        return self._hold(claimed)

    async def forget_servers(self, before: float) -> int:
        forgotten: int = await self._write(_forget, self.server_id, before)
        return forgotten

    def _hold(self, claimed: list[tuple[str, int]]) -> list[str]:
        for run_id, epoch in claimed:
            self._fence.owned[run_id] = epoch
        return [run_id for run_id, _ in claimed]

    # -- ownership --------------------------------------------------------------------

    def own_new_run(self, run_id: str) -> None:
        self._fence.owned[run_id] = 1
        self._store.writer.execute(
            "INSERT INTO run_owners (run_id, owner, epoch) VALUES (?, ?, 1)",
            (run_id, self.server_id),
        )

    def release_run(self, run_id: str) -> None:
        # The owner row stays (deleted with the run): a stale server that lost the
        # run still finds it names someone else, whatever happened since.
        self._fence.owned.pop(run_id, None)

    def forget_run(self, run_id: str) -> None:
        self._fence.owned.pop(run_id, None)

    def on_lost(self, callback: Callable[[set[str]], None]) -> None:
        self._store.writer.on_fenced = callback

    async def lost_runs(self) -> set[str]:
        held = dict(self._fence.owned)
        ids = list(held)
        lost: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = await self._store._fetchall(
                f"SELECT run_id, owner, epoch FROM run_owners WHERE run_id IN ({marks})", chunk
            )
            # No row yet: the run's creating batch is still on its way.
            lost |= {
                row[0] for row in rows if row[1] != self.server_id or int(row[2]) != held[row[0]]
            }
        return lost

    # -- commands ---------------------------------------------------------------------

    async def post_command(self, run_id: str, kind: str, body: dict[str, Any], now: float) -> int:
        command_id: int = await self._write(_post_command, run_id, kind, json.dumps(body), now)
        return command_id

    async def pending_commands(self) -> list[tuple[int, str, str, dict[str, Any]]]:
        rows = await self._store._fetchall(
            "SELECT c.id, c.run_id, c.kind, c.body FROM run_commands c "
            "JOIN run_owners o ON o.run_id = c.run_id "
            "WHERE c.done = 0 AND o.owner = ? ORDER BY c.id",
            (self.server_id,),
        )
        return [(int(r[0]), r[1], r[2], json.loads(r[3])) for r in rows]

    def finish_command(self, command_id: int, result: dict[str, Any]) -> None:
        self._store.writer.execute(
            "UPDATE run_commands SET done = 1, result = ? WHERE id = ?",
            (json.dumps(result), command_id),
        )

    async def command_result(self, command_id: int) -> dict[str, Any] | None:
        rows = await self._store._fetchall(
            "SELECT done, result FROM run_commands WHERE id = ?", (command_id,)
        )
        if not rows or not rows[0][0]:
            return None
        result: dict[str, Any] = json.loads(rows[0][1])
        return result

    # -- the event feed -----------------------------------------------------------------

    async def live_servers(self, now: float) -> set[str]:
        rows = await self._store._fetchall(
            "SELECT server_id FROM cluster_servers WHERE expire_time >= ?", (now,)
        )
        return {row[0] for row in rows}

    async def feed_position(self) -> int:
        rows = await self._store._fetchall("SELECT MAX(feed) FROM events WHERE feed IS NOT NULL")
        return int(rows[0][0] or 0)

    async def events_after(self, position: int, limit: int) -> tuple[list[Event], int]:
        rows = await self._store._fetch(
            "SELECT e.feed, e.run_id, e.sequence, e.time, e.type, e.body, r.tenant "
            "FROM events e LEFT JOIN runs r ON r.run_id = e.run_id "
            "WHERE e.feed > ? ORDER BY e.feed LIMIT ?",
            (position, limit),
            _numbered_event,
        )
        if not rows:
            return [], position
        fence = self._fence
        events = [event for feed, event in rows if not fence.written_here(feed)]
        last = rows[-1][0]
        fence.forget_written(last)
        return events, last


def _numbered_event(row: Any) -> tuple[int, Event]:
    event = codec.event_from_row(row[1:6])
    if row[6] is not None:
        event = dataclasses.replace(event, tenant=row[6])
    return int(row[0]), event


def _transaction(conn: sqlite3.Connection, fn: Callable[..., Any], *args: Any) -> Any:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn, *args)
        conn.execute("COMMIT")
        return result
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


def _renew(conn: sqlite3.Connection, server_id: str, expire_time: float) -> None:
    conn.execute(
        "INSERT INTO cluster_servers (server_id, expire_time) VALUES (?, ?) "
        "ON CONFLICT (server_id) DO UPDATE SET expire_time = excluded.expire_time",
        (server_id, expire_time),
    )


def _join(conn: sqlite3.Connection, server_id: str, expire_time: float) -> list[tuple[str, int]]:
    _renew(conn, server_id, expire_time)
    # Shared quota leases of an earlier life under this id (a restart): its calls
    # died with it and its runs, resumed, take theirs anew; kept, they would count
    # again with the renewed lease and never be released.
    conn.execute("DELETE FROM quota_leases WHERE server_id = ?", (server_id,))
    rows = conn.execute(
        "UPDATE run_owners SET epoch = epoch + 1 WHERE owner = ? AND run_id IN "
        f"(SELECT run_id FROM runs WHERE state IN ({_UNFINISHED_SQL})) "
        "RETURNING run_id, epoch",
        (server_id,),
    ).fetchall()
    return [(row[0], int(row[1])) for row in rows]


def _leave(conn: sqlite3.Connection, server_id: str) -> None:
    conn.execute("DELETE FROM cluster_servers WHERE server_id = ?", (server_id,))


def _take_over(conn: sqlite3.Connection, server_id: str, now: float) -> list[tuple[str, int]]:
    # The server taking over counts as live whatever its row says (it is running).
    live = [server_id] + [
        row[0]
        for row in conn.execute(
            "SELECT server_id FROM cluster_servers WHERE expire_time >= ? AND server_id != ?",
            (now, server_id),
        )
    ]
    live_marks = ", ".join("?" for _ in live)
    # Orphans: unfinished runs whose owner holds no live lease, or with no owner
    # (created before cluster mode, or by a single server).
    orphans = [
        row[0]
        for row in conn.execute(
            f"SELECT r.run_id FROM runs r LEFT JOIN run_owners o ON o.run_id = r.run_id "
            f"WHERE r.state IN ({_UNFINISHED_SQL}) "
            f"AND (o.owner IS NULL OR o.owner NOT IN ({live_marks})) "
            "ORDER BY r.create_time",
            live,
        )
    ]
    claimed: list[tuple[str, int]] = []
    if orphans:
        share = orphans[: math.ceil(len(orphans) / len(live))]
        for run_id in share:
            row = conn.execute(
                "INSERT INTO run_owners (run_id, owner, epoch) VALUES (?, ?, 1) "
                "ON CONFLICT (run_id) DO UPDATE SET owner = excluded.owner, "
                "epoch = run_owners.epoch + 1 RETURNING epoch",
                (run_id, server_id),
            ).fetchone()
            claimed.append((run_id, int(row[0])))
    return claimed


def _forget(conn: sqlite3.Connection, server_id: str, before: float) -> int:
    # Kept: this server's rows (it is running, whatever its lease row says) and
    # those of every server whose lease expired at or after `before` (one that
    # was slow to renew revives them with its next renewal).
    forgotten = (
        "server_id != ? AND server_id NOT IN "
        "(SELECT server_id FROM cluster_servers WHERE expire_time >= ?)"
    )
    deleted = 0
    for table in ("quota_leases", "cluster_workers"):
        cursor = conn.execute(f"DELETE FROM {table} WHERE {forgotten}", (server_id, before))
        deleted += cursor.rowcount
    # The lease row last: while it is there, the rows above are kept (the margin).
    deleted += conn.execute(
        "DELETE FROM cluster_servers WHERE expire_time < ? AND server_id != ? "
        "AND server_id NOT IN (SELECT o.owner FROM run_owners o JOIN runs r "
        f"ON r.run_id = o.run_id WHERE r.state IN ({_UNFINISHED_SQL}))",
        (before, server_id),
    ).rowcount
    return deleted


def _post_command(conn: sqlite3.Connection, run_id: str, kind: str, body: str, now: float) -> int:
    cursor = conn.execute(
        "INSERT INTO run_commands (run_id, kind, body, create_time) VALUES (?, ?, ?, ?)",
        (run_id, kind, body, now),
    )
    return int(cursor.lastrowid or 0)
