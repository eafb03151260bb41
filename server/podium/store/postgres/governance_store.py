"""Governance persistence on PostgreSQL: runtime quota and budget changes,
spend and reservations, as podium.store.sqlite.governance_store keeps them.

Settled spend and closed reservations ride the run store's batches, so a
settlement (delete the reservation, add the spend) is one transaction. An
atomic reservation (`reserve_within`) is a transaction of its own that locks
the budget_spend rows of its budgets first, as a settlement's upsert does.
"""

from __future__ import annotations

import json
import math
import time
from decimal import Decimal
from typing import Any

from podium.store.codec import from_nanos, to_nanos
from podium.store.postgres.store import PostgresStore
from podium.store.reservations import first_refusal, reserved_in

# pg_advisory_xact_lock key of the shared quotas' takes ("podiumqt").
QUOTA_LOCK = 0x706F6469756D7174


class PostgresGovernanceStore:
    """The PostgreSQL backend of governance's GovernanceStore port (podium.governance.ports)."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    # Runtime overrides: body None is a tombstone (deleted at runtime).

    async def overrides(self, kind: str) -> dict[str, dict[str, Any] | None]:
        table = _table(kind)
        rows = await self._store.fetch(f"SELECT name, body FROM {table}")
        return {row[0]: (json.loads(row[1]) if row[1] is not None else None) for row in rows}

    async def save_override(self, kind: str, name: str, body: dict[str, Any] | None) -> None:
        table = _table(kind)
        self._store.writer.execute(
            f"INSERT INTO {table} (name, body) VALUES ($1, $2) "
            "ON CONFLICT (name) DO UPDATE SET body = EXCLUDED.body",
            (name, None if body is None else json.dumps(body, default=str)),
        )
        await self._store.writer.commit()

    # Spend: written with the writer's batches (no await on the call path).

    def add_budget_spend(self, budget: str, period_key: str, amount: Decimal) -> None:
        self._store.writer.execute(
            "INSERT INTO budget_spend (budget, period_key, spent_nanos) VALUES ($1, $2, $3) "
            "ON CONFLICT (budget, period_key) DO UPDATE SET "
            "spent_nanos = budget_spend.spent_nanos + EXCLUDED.spent_nanos",
            (budget, period_key, to_nanos(amount)),
        )

    def add_spend(
        self, tenant: str, scopes: list[tuple[str, str]], day: str, amount: Decimal
    ) -> None:
        nanos = to_nanos(amount)
        for kind, value in scopes:
            self._store.writer.execute(
                "INSERT INTO spend (tenant, scope_kind, scope_value, day, spent_nanos, calls) "
                "VALUES ($1, $2, $3, $4, $5, 1) "
                "ON CONFLICT (tenant, scope_kind, scope_value, day) DO UPDATE SET "
                "spent_nanos = spend.spent_nanos + EXCLUDED.spent_nanos, calls = spend.calls + 1",
                (tenant, kind, value, day, nanos),
            )

    async def budget_spend(self) -> dict[tuple[str, str], Decimal]:
        rows = await self._store.fetch("SELECT budget, period_key, spent_nanos FROM budget_spend")
        return {(row[0], row[1]): from_nanos(row[2]) for row in rows}

    async def spend(
        self, tenant: str, scope_kind: str = "", scope_value: str = "", since_day: str = ""
    ) -> list[tuple[str, str, str, Decimal, int]]:
        """A tenant's (scope_kind, scope_value, day, spent, calls) rows, oldest day first."""
        where = ["tenant = $1", "day >= $2"]
        params: list[Any] = [tenant, since_day]
        if scope_kind:
            params.append(scope_kind)
            where.append(f"scope_kind = ${len(params)}")
        if scope_value:
            params.append(scope_value)
            where.append(f"scope_value = ${len(params)}")
        rows = await self._store.fetch(
            "SELECT scope_kind, scope_value, day, spent_nanos, calls FROM spend "
            f"WHERE {' AND '.join(where)} ORDER BY day, scope_kind, scope_value",
            *params,
        )
        return [(r[0], r[1], r[2], from_nanos(r[3]), int(r[4])) for r in rows]

    # Reservations: a row per call in flight.

    def open_reservation(
        self, reservation_id: str, run_id: str, amount: Decimal, body: dict[str, Any]
    ) -> None:
        self._store.writer.execute(
            "INSERT INTO budget_reservations (id, run_id, amount_nanos, body) "
            "VALUES ($1, $2, $3, $4)",
            (reservation_id, run_id, to_nanos(amount), json.dumps(body)),
        )

    async def reserve_within(
        self,
        reservation_id: str,
        run_id: str,
        amount: Decimal,
        body: dict[str, Any],
        limits: list[tuple[str, str, Decimal]],
    ) -> tuple[str, Decimal, Decimal] | None:
        failure = self._store.writer.failure
        if failure is not None:
            raise failure
        ceilings = {(name, period): to_nanos(limit) for name, period, limit in limits}
        keys = sorted(ceilings)
        budgets = [key[0] for key in keys]
        periods = [key[1] for key in keys]
        nanos = to_nanos(amount)
        async with self._store.pool.acquire() as conn, conn.transaction():
            # Every reservation in a budget's period and every settlement in it
            # lock its budget_spend row: taken in key order, so two servers
            # reserving in the same budgets queue instead of deadlocking.
            await conn.execute(
                "INSERT INTO budget_spend (budget, period_key, spent_nanos) "
                "SELECT budget, period_key, 0 FROM unnest($1::text[], $2::text[]) "
                "AS k(budget, period_key) ORDER BY budget, period_key "
                "ON CONFLICT (budget, period_key) DO NOTHING",
                budgets,
                periods,
            )
            rows = await conn.fetch(
                "SELECT budget, period_key, spent_nanos FROM budget_spend "
                "WHERE (budget, period_key) IN "
                "(SELECT * FROM unnest($1::text[], $2::text[])) "
                "ORDER BY budget, period_key FOR UPDATE",
                budgets,
                periods,
            )
            spent = {(row[0], row[1]): int(row[2]) for row in rows}
            # Open reservations are calls in flight: few, read whole.
            held = await conn.fetch("SELECT amount_nanos, body FROM budget_reservations")
            reserved = reserved_in(((int(r[0]), r[1]) for r in held), keys)
            refused = first_refusal(ceilings, spent, reserved, nanos)
            if refused is not None:
                budget, _ = refused
                return (
                    budget,
                    from_nanos(spent.get(refused, 0)),
                    from_nanos(reserved.get(refused, 0)),
                )
            await conn.execute(
                "INSERT INTO budget_reservations (id, run_id, amount_nanos, body) "
                "VALUES ($1, $2, $3, $4)",
                reservation_id,
                run_id,
                nanos,
                json.dumps(body),
            )
        return None

    def close_reservation(self, reservation_id: str) -> None:
        self._store.writer.execute(
            "DELETE FROM budget_reservations WHERE id = $1", (reservation_id,)
        )

    # -- cluster mode's shared quotas and breakers ----------------------------------

    async def take_shared(
        self,
        takes: list[tuple[str, float, float, float]],
        leases: list[tuple[str, int]],
        lease_id: str,
        now: float,
    ) -> float | None:
        failure = self._store.writer.failure
        if failure is not None:
            raise failure
        fence = self._store.fence
        server_id = fence.server_id if fence is not None else ""
        async with self._store.pool.acquire() as conn, conn.transaction():
            # One taker at a time across servers, from the bucket's read to its
            # write: the quotas' check and take are all or nothing together.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", QUOTA_LOCK)
            wait = 0.0
            levels: list[tuple[str, float]] = []
            for name, amount, rate, capacity in takes:
                if amount > capacity:
                    return math.inf
                row = await conn.fetchrow(
                    "SELECT tokens, update_time FROM quota_buckets WHERE name = $1", name
                )
                tokens = (
                    capacity
                    if row is None
                    else min(capacity, row[0] + rate * max(0.0, now - row[1]))
                )
                if tokens < amount:
                    wait = max(wait, (amount - tokens) / rate)
                levels.append((name, tokens - amount))
            if wait > 0:
                return wait
            for name, maximum in leases:
                held = await conn.fetchval(
                    "SELECT COUNT(*) FROM quota_leases WHERE name = $1 AND server_id IN "
                    "(SELECT server_id FROM cluster_servers WHERE expire_time >= $2)",
                    name,
                    now,
                )
                if held >= maximum:
                    return 0.0
            for name, level in levels:
                await conn.execute(
                    "INSERT INTO quota_buckets (name, tokens, update_time) VALUES ($1, $2, $3) "
                    "ON CONFLICT (name) DO UPDATE SET tokens = EXCLUDED.tokens, "
                    "update_time = EXCLUDED.update_time",
                    name,
                    level,
                    now,
                )
            for name, _ in leases:
                await conn.execute(
                    "INSERT INTO quota_leases (id, name, server_id) VALUES ($1, $2, $3)",
                    lease_id,
                    name,
                    server_id,
                )
        return None

    def adjust_shared(self, name: str, amount: float, capacity: float) -> None:
        self._store.writer.execute(
            "UPDATE quota_buckets SET tokens = LEAST($1::float8, tokens + $2::float8) "
            "WHERE name = $3",
            (capacity, amount, name),
        )

    def release_shared(self, lease_id: str) -> None:
        self._store.writer.execute("DELETE FROM quota_leases WHERE id = $1", (lease_id,))

    def publish_breaker(self, tenant: str, name: str, state: str, changed_time: float) -> None:
        self._store.writer.execute(
            "INSERT INTO breaker_states (tenant, name, state, changed_time, probe_expire) "
            "VALUES ($1, $2, $3, $4, NULL) ON CONFLICT (tenant, name) DO UPDATE SET "
            "state = EXCLUDED.state, changed_time = EXCLUDED.changed_time, probe_expire = NULL",
            (tenant, name, state, changed_time),
        )

    async def breaker_states(self) -> list[tuple[str, str, str, float]]:
        rows = await self._store.fetch(
            "SELECT tenant, name, state, changed_time FROM breaker_states ORDER BY tenant, name"
        )
        return [(row[0], row[1], row[2], float(row[3])) for row in rows]

    async def claim_probe(
        self, tenant: str, name: str, changed_time: float, now: float, hold: float
    ) -> bool:
        # One statement: the row's lock makes concurrent claims queue, and the
        # second sees the first's probe_expire.
        claimed = await self._store.pool.fetchval(
            "UPDATE breaker_states SET probe_expire = $1 WHERE tenant = $2 AND name = $3 "
            "AND state = 'OPEN' AND changed_time = $4 "
            "AND (probe_expire IS NULL OR probe_expire < $5) RETURNING 1",
            now + hold,
            tenant,
            name,
            changed_time,
            now,
        )
        if claimed is not None:
            return True
        # A breaker no server published (opened before cluster mode): its probe is local.
        known = await self._store.pool.fetchval(
            "SELECT 1 FROM breaker_states WHERE tenant = $1 AND name = $2", tenant, name
        )
        return known is None

    async def open_reservations(self) -> list[tuple[str, str, Decimal, dict[str, Any]]]:
        rows = await self._store.fetch(
            "SELECT id, run_id, amount_nanos, body FROM budget_reservations ORDER BY id"
        )
        return [(row[0], row[1], from_nanos(row[2]), json.loads(row[3])) for row in rows]

    async def commit(self) -> None:
        await self._store.writer.commit()

    async def note_start(self) -> bool:
        rows = await self._store.fetch("SELECT 1 FROM server_starts LIMIT 1")
        self._store.writer.execute(
            "INSERT INTO server_starts (start_time) VALUES ($1)", (time.time(),)
        )
        await self._store.writer.commit()
        return bool(rows)


def _table(kind: str) -> str:
    if kind not in ("quotas", "budgets", "alerts"):
        raise ValueError(kind)
    return f"governance_{kind}"
