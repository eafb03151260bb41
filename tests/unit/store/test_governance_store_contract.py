"""The GovernanceStore port (podium.governance.ports): runtime changes of
quotas and budgets (with tombstones), and settled spend per budget period and
per scope and UTC day. Spend rides the run store's next commit, so these
tests commit through the RunStore of the same backend."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podium.engine.ports import RunStore
from podium.governance.ports import GovernanceStore, OverrideKind

from .conftest import FreshStores, StoreFactory

NANO = Decimal("0.000000001")
QUOTA: dict[str, Any] = {
    "name": "simulated-requests",
    "scope": "provider:simulated",
    "dimension": "requests",
    "limit": 180.0,
    "burst": 3,
}
BUDGET: dict[str, Any] = {
    "name": "server-daily",
    "scope": "server",
    "limit": "5",
    "period": "day",
    "time_zone": "Europe/Zürich",
    "warn_fraction": 0.8,
    "labels": {"nested": [1, {"deeper": None}]},
}


# -- overrides ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["quotas", "budgets", "alerts"])
async def test_no_overrides_before_any_is_saved(
    governance_store: GovernanceStore, kind: OverrideKind
) -> None:
    assert await governance_store.overrides(kind) == {}


async def test_a_saved_override_round_trips_under_its_kind_only(
    governance_store: GovernanceStore,
) -> None:
    await governance_store.save_override("quotas", "shared-name", QUOTA)
    await governance_store.save_override("budgets", "shared-name", BUDGET)

    # Same name, different kinds: two independent entries.
    assert await governance_store.overrides("quotas") == {"shared-name": QUOTA}
    assert await governance_store.overrides("budgets") == {"shared-name": BUDGET}


async def test_the_alerts_settings_round_trip_and_switch_off_as_a_tombstone(
    governance_store: GovernanceStore,
) -> None:
    alerts = {"url": "https://hooks.example.com/podium", "secret": "k", "kinds": ["quota_wait"]}
    await governance_store.save_override("alerts", "alerts", alerts)
    assert await governance_store.overrides("alerts") == {"alerts": alerts}
    assert await governance_store.overrides("budgets") == {}
    await governance_store.save_override("alerts", "alerts", None)
    assert await governance_store.overrides("alerts") == {"alerts": None}


async def test_saving_an_override_again_replaces_it(governance_store: GovernanceStore) -> None:
    await governance_store.save_override("quotas", "q", QUOTA)
    await governance_store.save_override("quotas", "other", {"limit": 1})

    await governance_store.save_override("quotas", "q", {**QUOTA, "limit": 60.0})

    assert await governance_store.overrides("quotas") == {
        "q": {**QUOTA, "limit": 60.0},
        "other": {"limit": 1},
    }


async def test_a_tombstone_is_kept_as_none_and_can_be_replaced(
    governance_store: GovernanceStore,
) -> None:
    await governance_store.save_override("budgets", "b", BUDGET)

    # A runtime delete must stay visible as None: it hides the policy file's entry.
    await governance_store.save_override("budgets", "b", None)
    await governance_store.save_override("budgets", "never-set", None)
    assert await governance_store.overrides("budgets") == {"b": None, "never-set": None}

    await governance_store.save_override("budgets", "b", BUDGET)
    assert await governance_store.overrides("budgets") == {"b": BUDGET, "never-set": None}


async def test_a_saved_override_is_durable_when_save_returns(
    backend: StoreFactory, tmp_path: Path
) -> None:
    async with backend(tmp_path) as first:
        if not first.shared:
            pytest.skip("a private database has no second store to look from")
        # No commit() on the run store: save_override itself must be durable.
        await first.governance.save_override("quotas", "q", QUOTA)
        await first.governance.save_override("budgets", "b", None)
        async with backend(tmp_path) as second:
            quotas = await second.governance.overrides("quotas")
            budgets = await second.governance.overrides("budgets")
    assert quotas == {"q": QUOTA}
    assert budgets == {"b": None}


# -- budget spend ----------------------------------------------------------------------


async def test_budget_spend_is_empty_at_first(governance_store: GovernanceStore) -> None:
    assert await governance_store.budget_spend() == {}


async def test_budget_spend_accumulates_per_budget_and_period(
    governance_store: GovernanceStore, run_store: RunStore
) -> None:
    governance_store.add_budget_spend("server-daily", "2025-06-01", Decimal("0.25"))
    governance_store.add_budget_spend("server-daily", "2025-06-01", Decimal("0.125"))
    await run_store.commit()
    # Later batches add to what earlier ones stored.
    governance_store.add_budget_spend("server-daily", "2025-06-01", NANO)
    governance_store.add_budget_spend("server-daily", "2025-06-02", Decimal("1"))
    governance_store.add_budget_spend("openai-monthly", "2025-06", Decimal("3.5"))
    await run_store.commit()

    assert await governance_store.budget_spend() == {
        ("server-daily", "2025-06-01"): Decimal("0.375000001"),
        ("server-daily", "2025-06-02"): Decimal("1"),
        ("openai-monthly", "2025-06"): Decimal("3.5"),
    }


async def test_budget_spend_is_readable_once_the_run_store_commits(
    governance_store: GovernanceStore, run_store: RunStore
) -> None:
    governance_store.add_budget_spend("server-daily", "2025-06-01", Decimal("0.5"))

    await run_store.commit()

    assert await governance_store.budget_spend() == {("server-daily", "2025-06-01"): Decimal("0.5")}


async def test_budget_spend_keeps_every_nanodollar(
    governance_store: GovernanceStore, run_store: RunStore
) -> None:
    # 0.1 has no exact binary form: a float anywhere on the way would show here.
    for _ in range(10):
        governance_store.add_budget_spend("b", "p", Decimal("0.1"))
    for _ in range(7):
        governance_store.add_budget_spend("b", "p", NANO)
    governance_store.add_budget_spend("large", "p", Decimal("987654.123456789"))
    await run_store.commit()

    spent = await governance_store.budget_spend()

    assert spent[("b", "p")] == Decimal("1.000000007")
    assert spent[("large", "p")] == Decimal("987654.123456789")


# -- spend per scope and day -----------------------------------------------------------


async def test_spend_adds_one_call_to_each_scope_per_add(
    governance_store: GovernanceStore, run_store: RunStore
) -> None:
    scopes = [("server", ""), ("provider", "openai"), ("model", "openai/gpt-4o-mini")]
    governance_store.add_spend("default", scopes, "2025-06-01", Decimal("0.002"))
    governance_store.add_spend("default", scopes[:2], "2025-06-01", Decimal("0.000000003"))
    await run_store.commit()
    governance_store.add_spend("default", scopes[:1], "2025-06-01", Decimal("1"))
    await run_store.commit()

    rows = await governance_store.spend("default")

    assert sorted(rows) == sorted(
        [
            ("server", "", "2025-06-01", Decimal("1.002000003"), 3),
            ("provider", "openai", "2025-06-01", Decimal("0.002000003"), 2),
            ("model", "openai/gpt-4o-mini", "2025-06-01", Decimal("0.002"), 1),
        ]
    )


async def test_spend_is_kept_per_tenant(
    governance_store: GovernanceStore, run_store: RunStore
) -> None:
    governance_store.add_spend(
        "acme", [("server", ""), ("tenant", "acme")], "2025-06-01", Decimal("2")
    )
    governance_store.add_spend("globex", [("server", "")], "2025-06-01", Decimal("5"))
    await run_store.commit()

    # One tenant's rows never show another's: even the server-wide scope is per tenant.
    assert await governance_store.spend("acme") == [
        ("server", "", "2025-06-01", Decimal("2"), 1),
        ("tenant", "acme", "2025-06-01", Decimal("2"), 1),
    ]
    assert await governance_store.spend("globex") == [("server", "", "2025-06-01", Decimal("5"), 1)]
    assert await governance_store.spend("default") == []


async def test_spend_is_kept_per_day(
    governance_store: GovernanceStore, run_store: RunStore
) -> None:
    governance_store.add_spend("default", [("agent", "llm")], "2025-06-02", Decimal("2"))
    governance_store.add_spend("default", [("agent", "llm")], "2025-06-01", Decimal("1"))
    governance_store.add_spend("default", [("agent", "llm")], "2025-06-02", Decimal("2"))
    await run_store.commit()

    rows = await governance_store.spend("default")

    # Oldest day first, whatever the order of the adds.
    assert rows == [
        ("agent", "llm", "2025-06-01", Decimal("1"), 1),
        ("agent", "llm", "2025-06-02", Decimal("4"), 2),
    ]


async def test_spend_filters_by_scope_kind_value_and_first_day(
    governance_store: GovernanceStore, run_store: RunStore
) -> None:
    for day in ("2025-05-31", "2025-06-01", "2025-06-02"):
        governance_store.add_spend(
            "default",
            [
                ("server", ""),
                ("provider", "openai"),
                ("provider", "anthropic"),
                ("agent", "openai"),
            ],
            day,
            Decimal("1"),
        )
    await run_store.commit()

    by_kind = await governance_store.spend("default", scope_kind="provider")
    by_kind_and_value = await governance_store.spend(
        "default", scope_kind="provider", scope_value="openai"
    )
    # A value alone matches it under any kind.
    by_value = await governance_store.spend("default", scope_value="openai")
    # since_day is inclusive.
    since = await governance_store.spend("default", since_day="2025-06-01")
    everything = await governance_store.spend(
        "default", scope_kind="provider", scope_value="anthropic", since_day="2025-06-02"
    )

    assert {(r[0], r[1]) for r in by_kind} == {("provider", "openai"), ("provider", "anthropic")}
    assert len(by_kind) == 6
    assert [(r[0], r[1], r[2]) for r in by_kind_and_value] == [
        ("provider", "openai", "2025-05-31"),
        ("provider", "openai", "2025-06-01"),
        ("provider", "openai", "2025-06-02"),
    ]
    assert {(r[0], r[1]) for r in by_value} == {("provider", "openai"), ("agent", "openai")}
    assert len(by_value) == 6
    assert {r[2] for r in since} == {"2025-06-01", "2025-06-02"}
    assert len(since) == 8
    assert everything == [("provider", "anthropic", "2025-06-02", Decimal("1"), 1)]
    for rows in (by_kind, by_value, since):
        assert [r[2] for r in rows] == sorted(r[2] for r in rows)


_scopes = st.sampled_from(
    [("server", ""), ("provider", "openai"), ("provider", "anthropic"), ("model", "openai/o4")]
)
_days = st.sampled_from(["2025-05-31", "2025-06-01", "2025-06-02"])
_amounts = st.integers(0, 10**12).map(lambda nanos: Decimal(nanos) * NANO)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    calls=st.lists(
        st.tuples(st.lists(_scopes, min_size=1, max_size=4, unique=True), _days, _amounts),
        max_size=25,
    ),
    commit_every=st.integers(1, 5),
)
async def test_spend_sums_and_counts_every_call_exactly(
    fresh_stores: FreshStores,
    calls: list[tuple[list[tuple[str, str]], str, Decimal]],
    commit_every: int,
) -> None:
    expected_spent: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    expected_calls: dict[tuple[str, str, str], int] = defaultdict(int)
    for scopes, day, amount in calls:
        for kind, value in scopes:
            expected_spent[(kind, value, day)] += amount
            expected_calls[(kind, value, day)] += 1

    async with fresh_stores() as stores:
        # Spread over several batches: accumulation must work within and across them.
        for number, (scopes, day, amount) in enumerate(calls, start=1):
            stores.governance.add_spend("default", scopes, day, amount)
            if number % commit_every == 0:
                await stores.runs.commit()
        await stores.runs.commit()
        rows = await stores.governance.spend("default")

    assert {(k, v, d): (spent, n) for k, v, d, spent, n in rows} == {
        key: (expected_spent[key], expected_calls[key]) for key in expected_spent
    }
    assert len(rows) == len(expected_spent)
    assert [r[2] for r in rows] == sorted(r[2] for r in rows)


# -- reservations -------------------------------------------------------------------------

RESERVATION_BODY: dict[str, Any] = {"keys": [["run:r1", ""], ["daily", "2025-06-01"]], "x": 1}


async def test_a_reservation_is_open_until_closed(governance_store: GovernanceStore) -> None:
    assert await governance_store.open_reservations() == []
    governance_store.open_reservation("a", "r1", Decimal("0.000000012"), RESERVATION_BODY)
    governance_store.open_reservation("b", "r2", Decimal("3"), {})
    await governance_store.commit()
    assert await governance_store.open_reservations() == [
        ("a", "r1", Decimal("0.000000012"), RESERVATION_BODY),
        ("b", "r2", Decimal("3"), {}),
    ]
    governance_store.close_reservation("a")
    await governance_store.commit()
    assert await governance_store.open_reservations() == [("b", "r2", Decimal("3"), {})]


async def test_an_open_reservation_is_durable_when_commit_returns(
    backend: StoreFactory, tmp_path: Path
) -> None:
    async with backend(tmp_path) as first:
        if not first.shared:
            pytest.skip("a private database has no second store to look from")
        first.governance.open_reservation("a", "r1", Decimal(1), RESERVATION_BODY)
        await first.governance.commit()
        async with backend(tmp_path) as second:
            assert await second.governance.open_reservations() == [
                ("a", "r1", Decimal(1), RESERVATION_BODY)
            ]


async def test_note_start_says_whether_a_server_started_before(
    governance_store: GovernanceStore,
) -> None:
    assert await governance_store.note_start() is False
    assert await governance_store.note_start() is True


# -- atomic reservations (reserve_within) -----------------------------------------------

DAILY = ("daily", "2025-06-01")


def in_budgets(*keys: tuple[str, str]) -> dict[str, Any]:
    return {"keys": [list(key) for key in keys], "provider": "p"}


async def reserved(
    store: GovernanceStore,
    reservation_id: str,
    run_id: str,
    amount: Decimal,
    body: dict[str, Any],
    limits: dict[tuple[str, str], Decimal],
) -> bool:
    """Whether `reserve_within` stored the reservation (it returns the refusal, or None)."""
    refusal = await store.reserve_within(
        reservation_id, run_id, amount, body, [(*key, limit) for key, limit in limits.items()]
    )
    return refusal is None


async def test_a_reservation_within_its_limits_is_stored_durably(
    backend: StoreFactory, tmp_path: Path
) -> None:
    async with backend(tmp_path) as first:
        body = in_budgets(("run:r1", ""), DAILY)
        assert await reserved(
            first.governance, "a", "r1", Decimal("2.5"), body, {DAILY: Decimal(10)}
        )
        assert await first.governance.open_reservations() == [("a", "r1", Decimal("2.5"), body)]
        if not first.shared:
            return
        async with backend(tmp_path) as second:  # no commit(): durable on return
            assert [r[0] for r in await second.governance.open_reservations()] == ["a"]


async def test_settled_spend_and_open_reservations_count_against_the_limit(
    governance_store: GovernanceStore,
) -> None:
    limit = {DAILY: Decimal(10)}
    governance_store.add_budget_spend(*DAILY, Decimal(4))
    governance_store.open_reservation("held", "r0", Decimal(3), in_budgets(DAILY))
    await governance_store.commit()

    assert await reserved(governance_store, "a", "r1", Decimal(3), in_budgets(DAILY), limit)
    # 4 settled + 3 + 3 reserved: not a nanodollar more.
    assert not await reserved(
        governance_store, "b", "r1", Decimal("0.000000001"), in_budgets(DAILY), limit
    )
    assert sorted(r[0] for r in await governance_store.open_reservations()) == ["a", "held"]

    # Closing one (settled or released) frees its amount.
    governance_store.close_reservation("held")
    await governance_store.commit()
    assert await reserved(governance_store, "b", "r1", Decimal(3), in_budgets(DAILY), limit)


async def test_only_reservations_and_spend_in_the_same_budget_period_count(
    governance_store: GovernanceStore,
) -> None:
    other_day = ("daily", "2025-06-02")
    governance_store.add_budget_spend(*other_day, Decimal(100))
    governance_store.add_budget_spend("monthly", "2025-06", Decimal(100))
    governance_store.open_reservation("x", "r0", Decimal(100), in_budgets(other_day))
    await governance_store.commit()

    assert await reserved(
        governance_store, "a", "r1", Decimal(10), in_budgets(DAILY), {DAILY: Decimal(10)}
    )


async def test_every_limit_must_hold_and_none_is_no_check(
    governance_store: GovernanceStore,
) -> None:
    monthly = ("monthly", "2025-06")
    limits = {DAILY: Decimal(10), monthly: Decimal(5)}
    body = in_budgets(DAILY, monthly)

    assert not await reserved(governance_store, "a", "r1", Decimal(6), body, limits)
    assert await reserved(governance_store, "b", "r1", Decimal(5), body, limits)
    assert await reserved(governance_store, "c", "r1", Decimal(10**6), body, {})
    assert sorted(r[0] for r in await governance_store.open_reservations()) == ["b", "c"]


async def test_concurrent_reservations_never_exceed_the_limit(
    backend: StoreFactory, tmp_path: Path
) -> None:
    """Two stores on one database (two servers) when the backend can share one,
    each with many reservations at once: exactly as many fit as the limit allows."""
    limit = {DAILY: Decimal(10)}
    async with backend(tmp_path) as first, contextlib.AsyncExitStack() as stack:
        stores = [first.governance]
        if first.shared:
            second = await stack.enter_async_context(backend(tmp_path))
            stores.append(second.governance)
        first.governance.add_budget_spend(*DAILY, Decimal(2))
        await first.runs.commit()

        results = await asyncio.gather(
            *(
                reserved(
                    stores[n % len(stores)], f"r{n}", "run", Decimal(1), in_budgets(DAILY), limit
                )
                for n in range(30)
            )
        )

        assert results.count(True) == 8
        assert len(await first.governance.open_reservations()) == 8
