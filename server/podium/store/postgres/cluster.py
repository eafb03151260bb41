"""The PostgreSQL backend of the engine's ClusterStore port: several `podium
serve --cluster` processes on one PostgreSQL database, as
podium.store.sqlite.cluster does on a file.

Leases and ownership changes are short transactions of their own on a pooled
connection, serialized among servers by a transaction-level advisory lock (two
servers never claim the same orphan); run writes are fenced inside each batch
(fence.py). Reads see committed data only.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any

import asyncpg

from podium.core.model import Event
from podium.core.states import UNFINISHED_RUN_STATES
from podium.store import codec
from podium.store.postgres.fence import PostgresFence
from podium.store.postgres.store import PostgresStore

_UNFINISHED = [int(state) for state in UNFINISHED_RUN_STATES]
# pg_advisory_xact_lock key of joins and takeovers ("podiumcl").
LEASE_LOCK = 0x706F6469756D636C


class PostgresCluster:
    """ClusterStore (podium.engine.ports) over a PostgresStore opened with a server id."""

    def __init__(self, store: PostgresStore) -> None:
        if store.fence is None:
            raise ValueError("the store was not opened in cluster mode (no server id)")
        self._store = store
        self._fence: PostgresFence = store.fence

    @property
    def server_id(self) -> str:
        return self._fence.server_id

    async def _write(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(conn, *args)` in a transaction of its own."""
        failure = self._store.writer.failure
        if failure is not None:
            raise failure
        async with self._store.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LEASE_LOCK)
            return await fn(conn, *args)

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
            "INSERT INTO run_owners (run_id, owner, epoch) VALUES ($1, $2, 1)",
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
        if not held:
            return set()
        rows = await self._store.fetch(
            "SELECT run_id, owner, epoch FROM run_owners WHERE run_id = ANY($1::text[])",
            list(held),
        )
        # No row yet: the run's creating batch is still on its way.
        return {row[0] for row in rows if row[1] != self.server_id or int(row[2]) != held[row[0]]}

    # -- commands ---------------------------------------------------------------------

    async def post_command(self, run_id: str, kind: str, body: dict[str, Any], now: float) -> int:
        failure = self._store.writer.failure
        if failure is not None:
            raise failure
        command_id = await self._store.pool.fetchval(
            "INSERT INTO run_commands (run_id, kind, body, create_time) "
            "VALUES ($1, $2, $3, $4) RETURNING id",
            run_id,
            kind,
            json.dumps(body),
            now,
        )
        return int(command_id)

    async def pending_commands(self) -> list[tuple[int, str, str, dict[str, Any]]]:
        rows = await self._store.fetch(
            "SELECT c.id, c.run_id, c.kind, c.body FROM run_commands c "
            "JOIN run_owners o ON o.run_id = c.run_id "
            "WHERE NOT c.done AND o.owner = $1 ORDER BY c.id",
            self.server_id,
        )
        return [(int(r[0]), r[1], r[2], json.loads(r[3])) for r in rows]

    def finish_command(self, command_id: int, result: dict[str, Any]) -> None:
        self._store.writer.execute(
            "UPDATE run_commands SET done = TRUE, result = $1 WHERE id = $2",
            (json.dumps(result), command_id),
        )

    async def command_result(self, command_id: int) -> dict[str, Any] | None:
        rows = await self._store.fetch(
            "SELECT done, result FROM run_commands WHERE id = $1", command_id
        )
        if not rows or not rows[0][0]:
            return None
        result: dict[str, Any] = json.loads(rows[0][1])
        return result

    # -- the event feed -----------------------------------------------------------------

    async def live_servers(self, now: float) -> set[str]:
        rows = await self._store.fetch(
            "SELECT server_id FROM cluster_servers WHERE expire_time >= $1", now
        )
        return {row[0] for row in rows}

    async def feed_position(self) -> int:
        top = await self._store.pool.fetchval("SELECT MAX(feed) FROM events WHERE feed IS NOT NULL")
        return int(top or 0)

    async def events_after(self, position: int, limit: int) -> tuple[list[Event], int]:
        rows = await self._store.fetch(
            "SELECT e.feed, e.run_id, e.sequence, e.time, e.type, e.body, r.tenant "
            "FROM events e LEFT JOIN runs r ON r.run_id = e.run_id "
            "WHERE e.feed > $1 ORDER BY e.feed LIMIT $2",
            position,
            limit,
        )
        if not rows:
            return [], position
        fence = self._fence
        numbered = [_numbered_event(row) for row in rows]
        events = [event for feed, event in numbered if not fence.written_here(feed)]
        last = numbered[-1][0]
        fence.forget_written(last)
        return events, last


def _numbered_event(row: Any) -> tuple[int, Event]:
    event = codec.event_from_row(tuple(row[1:6]))
    if row[6] is not None:
        event = dataclasses.replace(event, tenant=row[6])
    return int(row[0]), event


async def _renew(conn: asyncpg.Connection, server_id: str, expire_time: float) -> None:
    await conn.execute(
        "INSERT INTO cluster_servers (server_id, expire_time) VALUES ($1, $2) "
        "ON CONFLICT (server_id) DO UPDATE SET expire_time = EXCLUDED.expire_time",
        server_id,
        expire_time,
    )


async def _join(
    conn: asyncpg.Connection, server_id: str, expire_time: float
) -> list[tuple[str, int]]:
    await _renew(conn, server_id, expire_time)
    # Shared quota leases of an earlier life under this id (a restart): its calls
    # died with it and its runs, resumed, take theirs anew; kept, they would count
    # again with the renewed lease and never be released.
    await conn.execute("DELETE FROM quota_leases WHERE server_id = $1", server_id)
    rows = await conn.fetch(
        "UPDATE run_owners SET epoch = epoch + 1 WHERE owner = $1 AND run_id IN "
        "(SELECT run_id FROM runs WHERE state = ANY($2::integer[])) "
        "RETURNING run_id, epoch",
        server_id,
        _UNFINISHED,
    )
    return [(row[0], int(row[1])) for row in rows]


async def _leave(conn: asyncpg.Connection, server_id: str) -> None:
    await conn.execute("DELETE FROM cluster_servers WHERE server_id = $1", server_id)


async def _take_over(conn: asyncpg.Connection, server_id: str, now: float) -> list[tuple[str, int]]:
    # The server taking over counts as live whatever its row says (it is running).
    live = [server_id] + [
        row[0]
        for row in await conn.fetch(
            "SELECT server_id FROM cluster_servers WHERE expire_time >= $1 AND server_id != $2",
            now,
            server_id,
        )
    ]
    # Orphans: unfinished runs whose owner holds no live lease, or with no owner
    # (created before cluster mode, or by a single server).
    orphans = [
        row[0]
        for row in await conn.fetch(
            "SELECT r.run_id FROM runs r LEFT JOIN run_owners o ON o.run_id = r.run_id "
            "WHERE r.state = ANY($1::integer[]) "
            "AND (o.owner IS NULL OR NOT (o.owner = ANY($2::text[]))) "
            "ORDER BY r.create_time, r.run_id",
            _UNFINISHED,
            live,
        )
    ]
    claimed: list[tuple[str, int]] = []
    if orphans:
        share = orphans[: math.ceil(len(orphans) / len(live))]
        rows = await conn.fetch(
            "INSERT INTO run_owners (run_id, owner, epoch) "
            "SELECT run_id, $2, 1 FROM unnest($1::text[]) AS s(run_id) ORDER BY run_id "
            "ON CONFLICT (run_id) DO UPDATE SET owner = EXCLUDED.owner, "
            "epoch = run_owners.epoch + 1 RETURNING run_id, epoch",
            share,
            server_id,
        )
        epochs = {row[0]: int(row[1]) for row in rows}
        claimed = [(run_id, epochs[run_id]) for run_id in share]
    return claimed


async def _forget(conn: asyncpg.Connection, server_id: str, before: float) -> int:
    # As SQLite's: this server's rows and those of servers whose lease expired at
    # or after `before` are kept. Renewals take the same advisory lock, so no
    # server renews between the reads of cluster_servers and the deletes.
    deleted = 0
    for table in ("quota_leases", "cluster_workers"):
        status = await conn.execute(
            f"DELETE FROM {table} WHERE server_id != $1 AND server_id NOT IN "
            "(SELECT server_id FROM cluster_servers WHERE expire_time >= $2)",
            server_id,
            before,
        )
        deleted += _count(status)
    status = await conn.execute(
        "DELETE FROM cluster_servers WHERE expire_time < $1 AND server_id != $2 "
        "AND server_id NOT IN (SELECT o.owner FROM run_owners o JOIN runs r "
        "ON r.run_id = o.run_id WHERE r.state = ANY($3::integer[]))",
        before,
        server_id,
        _UNFINISHED,
    )
    return deleted + _count(status)


def _count(status: str) -> int:
    """Rows a statement touched, from its command tag ("DELETE 3")."""
    return int(status.rsplit(" ", 1)[-1])
