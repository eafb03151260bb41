"""Governance across a restart, on a real SQLite file and a ManualClock: a
reservation is stored before its call goes out and closed with its
settlement; one left open by a crash holds its budgets at the next start
until it is charged at its worst case; a restarted server's rate buckets
start empty."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import pytest

from podium.core.clock import ManualClock
from podium.governance.budgets import BudgetBusy, BudgetExceeded
from podium.governance.policy import Policy
from podium.governance.scopes import CallScopes
from podium.governance.service import Governance
from podium.store.sqlite.governance_store import SqliteGovernanceStore
from podium.store.sqlite.store import SqliteStore

CALL = CallScopes(provider="simulated", model="sim-small", agent="llm", workflow="wf")
D = Decimal
POLICY = Policy.model_validate(
    {
        "quotas": [
            {
                "name": "rpm",
                "scope": "provider:simulated",
                "dimension": "requests",
                "limit": 60,
                "burst": 5,
            }
        ],
        "budgets": [{"name": "total", "scope": "server", "limit": "10"}],
    }
)


@asynccontextmanager
async def started(db: Path, clock: ManualClock) -> AsyncIterator[Governance]:
    """A server's governance on `db`, as `podium serve` loads it."""
    store = SqliteStore(str(db))
    await store.open()
    try:
        governance = Governance(POLICY, clock, SqliteGovernanceStore(store))
        await governance.load()
        yield governance
    finally:
        await store.close()


async def test_an_open_reservation_is_charged_its_worst_case_after_a_crash(
    tmp_path: Path,
) -> None:
    db, clock = tmp_path / "podium.db", ManualClock(start=1_000_000.0)
    async with started(db, clock) as first:
        settled = first.ledger.reserve(CALL, "r1", D(8), D(3))
        await first.hold(settled, CALL, step_id="s", attempt=1)
        first.ledger.settle(settled, D(1))
        first.record_spend(CALL, D(1), reservation_id=settled.id)
        released = first.ledger.reserve(CALL, "r1", D(8), D(3))
        await first.hold(released, CALL, step_id="s", attempt=2)
        first.release(released)
        # In flight at the "crash": stored, never settled.
        in_flight = first.ledger.reserve(CALL, "r1", D(8), D(4))
        await first.hold(in_flight, CALL, step_id="s", attempt=3, item=2)

    async with started(db, clock) as second:
        # Held again before anything runs: the server budget has 10 - 1 - 4 left.
        assert second.ledger.spent("total") == D(1)
        assert second.ledger.reserved("total") == D(4)
        with pytest.raises(BudgetBusy):  # 1 + 6 fits only once the 4 held settle
            second.ledger.reserve(CALL, "other", None, D(6))
        (left,) = second.resume_run("r1", D(1))
        assert (left.id, left.amount, left.step_id, left.attempt, left.item) == (
            in_flight.id,
            D(4),
            "s",
            3,
            2,
        )
        second.charge_left_open(left)
        assert second.ledger.spent("total") == D(5)
        assert second.ledger.reserved("total") == 0
        # The run's ceiling counts its spend before the restart and the charge.
        with pytest.raises(BudgetExceeded):
            second.ledger.reserve(CALL, "r1", D(8), D(4))
        second.ledger.reserve(CALL, "r1", D(8), D(3))

    async with started(db, clock) as third:
        # Charged once: the row went with the charge.
        assert third.resume_run("r1", D(5)) == []
        assert third.ledger.spent("total") == D(5)


async def test_a_restarted_server_starts_its_rate_buckets_empty(tmp_path: Path) -> None:
    db, clock = tmp_path / "podium.db", ManualClock(start=1_000_000.0)
    async with started(db, clock) as first:
        # The first start ever: the burst is there.
        assert {v.name: v.available for v in first.quotas.snapshot().rates} == {"rpm": 5}
    async with started(db, clock) as second:
        assert {v.name: v.available for v in second.quotas.snapshot().rates} == {"rpm": 0}
        clock.advance(2)
        assert {v.name: v.available for v in second.quotas.snapshot().rates} == {"rpm": 2}
