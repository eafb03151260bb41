"""Governance persistence: runtime quota and budget changes, and spend."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from decimal import Decimal
from typing import Any

from podium.store.codec import from_nanos, to_nanos
from podium.store.sqlite.store import SqliteStore


class SqliteGovernanceStore:
    """The SQLite backend of governance's GovernanceStore port (podium.governance.ports)."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    # Runtime overrides: body None is a tombstone (deleted at runtime).

    async def overrides(self, kind: str) -> dict[str, dict[str, Any] | None]:
        table = _table(kind)
        rows = await self._store._fetchall(f"SELECT name, body FROM {table}")
        return {row[0]: (json.loads(row[1]) if row[1] is not None else None) for row in rows}

    async def save_override(self, kind: str, name: str, body: dict[str, Any] | None) -> None:
        table = _table(kind)
        self._store.writer.execute(
            f"INSERT INTO {table} (name, body) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET body = excluded.body",
            (name, None if body is None else json.dumps(body, default=str)),
        )
        await self._store.writer.commit()

    # Spend: written with the writer's batches (no await on the call path).

    def add_budget_spend(self, budget: str, period_key: str, amount: Decimal) -> None:
        self._store.writer.execute(
            "INSERT INTO budget_spend (budget, period_key, spent_nanos) VALUES (?, ?, ?) "
            "ON CONFLICT (budget, period_key) DO UPDATE SET "
            "spent_nanos = spent_nanos + excluded.spent_nanos",
            (budget, period_key, to_nanos(amount)),
        )

    def add_spend(
        self, tenant: str, scopes: list[tuple[str, str]], day: str, amount: Decimal
    ) -> None:
        nanos = to_nanos(amount)
        for kind, value in scopes:
            self._store.writer.execute(
                "INSERT INTO spend (tenant, scope_kind, scope_value, day, spent_nanos, calls) "
                "VALUES (?, ?, ?, ?, ?, 1) "
                "ON CONFLICT (tenant, scope_kind, scope_value, day) DO UPDATE SET "
                "spent_nanos = spent_nanos + excluded.spent_nanos, calls = calls + 1",
                (tenant, kind, value, day, nanos),
            )

    async def budget_spend(self) -> dict[tuple[str, str], Decimal]:
        rows = await self._store._fetchall(
            "SELECT budget, period_key, spent_nanos FROM budget_spend"
        )
        return {(row[0], row[1]): from_nanos(row[2]) for row in rows}

    async def spend(
        self, tenant: str, scope_kind: str = "", scope_value: str = "", since_day: str = ""
    ) -> list[tuple[str, str, str, Decimal, int]]:
        """A tenant's (scope_kind, scope_value, day, spent, calls) rows, oldest day first."""
        where = ["tenant = ?", "day >= ?"]
        params: list[Any] = [tenant, since_day]
        if scope_kind:
            where.append("scope_kind = ?")
            params.append(scope_kind)
        if scope_value:
            where.append("scope_value = ?")
            params.append(scope_value)
        rows = await self._store._fetchall(
            "SELECT scope_kind, scope_value, day, spent_nanos, calls FROM spend "
            f"WHERE {' AND '.join(where)} ORDER BY day, scope_kind, scope_value",
            params,
        )
        return [(r[0], r[1], r[2], from_nanos(r[3]), int(r[4])) for r in rows]

    # Reservations: a row per call in flight.

    def open_reservation(
        self, reservation_id: str, run_id: str, amount: Decimal, body: dict[str, Any]
    ) -> None:
        self._store.writer.execute(
            "INSERT INTO budget_reservations (id, run_id, amount_nanos, body) VALUES (?, ?, ?, ?)",
            (reservation_id, run_id, to_nanos(amount), json.dumps(body)),
        )

    def close_reservation(self, reservation_id: str) -> None:
        self._store.writer.execute(
            "DELETE FROM budget_reservations WHERE id = ?", (reservation_id,)
        )

    async def reserve_within(
        self,
        reservation_id: str,
        run_id: str,
        amount: Decimal,
        body: dict[str, Any],
        limits: list[tuple[str, str, Decimal]],
    ) -> tuple[str, Decimal, Decimal] | None:
        # Its own transaction on the writer's thread: BEGIN IMMEDIATE holds the
        # database's write lock from the check to the insert, across processes.
        writer_conn = self._store.writer._conn
        refused: tuple[str, int, int] | None = await writer_conn.call(
            _reserve_within,
            reservation_id,
            run_id,
            to_nanos(amount),
            json.dumps(body),
            [(name, key, to_nanos(limit)) for name, key, limit in limits],
        )
        if refused is None:
            return None
        return (refused[0], from_nanos(refused[1]), from_nanos(refused[2]))

    async def take_shared(
        self,
        takes: list[tuple[str, float, float, float]],
        leases: list[tuple[str, int]],
        lease_id: str,
        now: float,
    ) -> float | None:
        fence = self._store.fence
        server_id = fence.server_id if fence is not None else ""
        writer_conn = self._store.writer._conn
        wait: float | None = await writer_conn.call(
            _take_shared, takes, leases, lease_id, server_id, now
        )
        return wait

    def adjust_shared(self, name: str, amount: float, capacity: float) -> None:
        self._store.writer.execute(
            "UPDATE quota_buckets SET tokens = MIN(?, tokens + ?) WHERE name = ?",
            (capacity, amount, name),
        )

    def release_shared(self, lease_id: str) -> None:
        self._store.writer.execute("DELETE FROM quota_leases WHERE id = ?", (lease_id,))

    def publish_breaker(self, tenant: str, name: str, state: str, changed_time: float) -> None:
        self._store.writer.execute(
            "INSERT INTO breaker_states (tenant, name, state, changed_time, probe_expire) "
            "VALUES (?, ?, ?, ?, NULL) ON CONFLICT (tenant, name) DO UPDATE SET "
            "state = excluded.state, changed_time = excluded.changed_time, probe_expire = NULL",
            (tenant, name, state, changed_time),
        )

    async def breaker_states(self) -> list[tuple[str, str, str, float]]:
        rows = await self._store._fetchall(
            "SELECT tenant, name, state, changed_time FROM breaker_states"
        )
        return [(row[0], row[1], row[2], float(row[3])) for row in rows]

    async def claim_probe(
        self, tenant: str, name: str, changed_time: float, now: float, hold: float
    ) -> bool:
        writer_conn = self._store.writer._conn
        taken: bool = await writer_conn.call(
            _claim_probe, tenant, name, changed_time, now, now + hold
        )
        return taken

    async def open_reservations(self) -> list[tuple[str, str, Decimal, dict[str, Any]]]:
        rows = await self._store._fetchall(
            "SELECT id, run_id, amount_nanos, body FROM budget_reservations ORDER BY id"
        )
        return [(row[0], row[1], from_nanos(row[2]), json.loads(row[3])) for row in rows]

    async def commit(self) -> None:
        await self._store.writer.commit()

    async def note_start(self) -> bool:
        rows = await self._store._fetchall("SELECT 1 FROM server_starts LIMIT 1")
        self._store.writer.execute(
            "INSERT INTO server_starts (start_time) VALUES (?)", (time.time(),)
        )
        await self._store.writer.commit()
        return bool(rows)


def _reserve_within(
    conn: sqlite3.Connection,
    reservation_id: str,
    run_id: str,
    amount: int,
    body: str,
    limits: list[tuple[str, str, int]],
) -> tuple[str, int, int] | None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for name, period_key, limit in limits:
            row = conn.execute(
                "SELECT spent_nanos FROM budget_spend WHERE budget = ? AND period_key = ?",
                (name, period_key),
            ).fetchone()
            spent = int(row[0]) if row else 0
            # The keys a reservation holds are in its body (few rows: calls in flight).
            reserved = int(
                conn.execute(
                    "SELECT COALESCE(SUM(r.amount_nanos), 0) FROM budget_reservations r, "
                    "json_each(r.body, '$.keys') k "
                    "WHERE json_extract(k.value, '$[0]') = ? "
                    "AND json_extract(k.value, '$[1]') = ?",
                    (name, period_key),
                ).fetchone()[0]
            )
            if spent + reserved + amount > limit:
                conn.execute("ROLLBACK")
                return (name, spent, reserved)
        conn.execute(
            "INSERT INTO budget_reservations (id, run_id, amount_nanos, body) VALUES (?, ?, ?, ?)",
            (reservation_id, run_id, amount, body),
        )
        conn.execute("COMMIT")
        return None
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


def _take_shared(
    conn: sqlite3.Connection,
    takes: list[tuple[str, float, float, float]],
    leases: list[tuple[str, int]],
    lease_id: str,
    server_id: str,
    now: float,
) -> float | None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        wait = 0.0
        levels: list[tuple[str, float]] = []
        for name, amount, rate, capacity in takes:
            if amount > capacity:
                conn.execute("ROLLBACK")
                return math.inf
            row = conn.execute(
                "SELECT tokens, update_time FROM quota_buckets WHERE name = ?", (name,)
            ).fetchone()
            tokens = (
                capacity if row is None else min(capacity, row[0] + rate * max(0.0, now - row[1]))
            )
            if tokens < amount:
                wait = max(wait, (amount - tokens) / rate)
            levels.append((name, tokens - amount))
        if wait > 0:
            conn.execute("ROLLBACK")
            return wait
        for name, maximum in leases:
            held = conn.execute(
                "SELECT COUNT(*) FROM quota_leases WHERE name = ? AND server_id IN "
                "(SELECT server_id FROM cluster_servers WHERE expire_time >= ?)",
                (name, now),
            ).fetchone()[0]
            if held >= maximum:
                conn.execute("ROLLBACK")
                return 0.0
        for name, level in levels:
            conn.execute(
                "INSERT INTO quota_buckets (name, tokens, update_time) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET tokens = excluded.tokens, "
                "update_time = excluded.update_time",
                (name, level, now),
            )
        for name, _ in leases:
            conn.execute(
                "INSERT INTO quota_leases (id, name, server_id) VALUES (?, ?, ?)",
                (lease_id, name, server_id),
            )
        conn.execute("COMMIT")
        return None
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


def _claim_probe(
    conn: sqlite3.Connection,
    tenant: str,
    name: str,
    changed_time: float,
    now: float,
    until: float,
) -> bool:
    # One statement: atomic on its own (the connection autocommits).
    cursor = conn.execute(
        "UPDATE breaker_states SET probe_expire = ? WHERE tenant = ? AND name = ? "
        "AND state = 'OPEN' AND changed_time = ? AND (probe_expire IS NULL OR probe_expire < ?)",
        (until, tenant, name, changed_time, now),
    )
    if cursor.rowcount == 1:
        return True
    # A breaker no server published (opened before cluster mode): its probe is local.
    row = conn.execute(
        "SELECT 1 FROM breaker_states WHERE tenant = ? AND name = ?", (tenant, name)
    ).fetchone()
    return row is None


def _table(kind: str) -> str:
    if kind not in ("quotas", "budgets", "alerts"):
        raise ValueError(kind)
    return f"governance_{kind}"
