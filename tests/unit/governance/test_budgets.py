"""Budgets: all-or-nothing reservations, settling, warnings, periods in time
zones, persistence hooks and runtime updates, on a ManualClock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podium.core.clock import ManualClock
from podium.governance.budgets import (
    Budget,
    BudgetBusy,
    BudgetError,
    BudgetExceeded,
    BudgetLedger,
    BudgetWarning,
    Reservation,
    run_budget_name,
)
from podium.governance.scopes import CallScopes

CALL = CallScopes(provider="openai", model="gpt-4o", agent="llm", workflow="wf")
D = Decimal


def at(text: str) -> float:
    """Wall-clock seconds of an ISO instant in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def ledger(
    *budgets: Budget, start: str = "2026-11-21T12:00:00"
) -> tuple[BudgetLedger, ManualClock]:
    clock = ManualClock(start=at(start))
    return BudgetLedger(list(budgets), clock), clock


# -- configuration ------------------------------------------------------------


def test_valid_budgets() -> None:
    budget = Budget("b", "server", "", D(1), period="day", timezone="Europe/Paris")
    assert budget.period_key(at("2026-11-21T12:00:00")) == "2026-11-21"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"scope_value": "x"}, "budget.scope_value"),
        ({"limit": D(-1)}, "budget.limit"),
        ({"limit": D("NaN")}, "budget.limit"),
        ({"period": "week"}, "budget.period"),
        ({"timezone": "Mars/Olympus"}, "budget.timezone"),
        ({"warn_fraction": 0.0}, "budget.warn_fraction"),
        ({"name": ""}, "budget.name"),
    ],
)
def test_invalid_budgets_name_the_field(kwargs: dict[str, object], field: str) -> None:
    values: dict[str, object] = {
        "name": "b",
        "scope_kind": "server",
        "scope_value": "",
        "limit": D(1),
        **kwargs,
    }
    with pytest.raises(BudgetError) as raised:
        Budget(**values)  # type: ignore[arg-type]
    assert raised.value.field == field


def test_ledger_rejects_run_budgets_and_duplicates() -> None:
    clock = ManualClock()
    with pytest.raises(BudgetError) as raised:
        BudgetLedger([Budget("r", "run", "x", D(1))], clock)
    assert raised.value.field == "budgets[0].scope_kind"
    with pytest.raises(BudgetError) as raised:
        BudgetLedger([Budget("a", "server", "", D(1)), Budget("a", "server", "", D(2))], clock)
    assert raised.value.field == "budgets[1].name"
    with pytest.raises(BudgetError):
        BudgetLedger([Budget("run:x", "server", "", D(1))], clock)


def test_period_keys_follow_the_time_zone() -> None:
    budget = Budget("b", "server", "", D(1), period="day", timezone="Europe/Paris")
    assert budget.period_key(at("2026-11-21T22:59:00")) == "2026-11-21"
    assert budget.period_key(at("2026-11-21T23:00:00")) == "2026-11-22"
    monthly = Budget("m", "server", "", D(1), period="month", timezone="America/New_York")
    assert monthly.period_key(at("2026-12-01T03:00:00")) == "2026-11"
    assert Budget("n", "server", "", D(1)).period_key(0.0) == ""


# -- reservations -------------------------------------------------------------------


def test_reserve_in_every_applicable_scope() -> None:
    books, _ = ledger(
        Budget("server", "server", "", D(10)),
        Budget("openai", "provider", "openai", D(10)),
        Budget("anthropic", "provider", "anthropic", D(10)),
        Budget("agent", "agent", "llm", D(10)),
        Budget("wf", "workflow", "wf", D(10)),
    )
    reservation = books.reserve(CALL, "run-1", D(5), D(2))
    reserved = {view.name: view.reserved for view in books.snapshot()}
    assert reserved == {
        "server": D(2),
        "openai": D(2),
        "anthropic": D(0),
        "agent": D(2),
        "wf": D(2),
        "run:run-1": D(2),
    }
    assert books.settle(reservation, D("1.5")) == []
    assert books.spent("openai") == D("1.5") and books.reserved("openai") == 0
    assert books.spent(run_budget_name("run-1")) == D("1.5")


def test_a_refused_reservation_reserves_nothing() -> None:
    books, _ = ledger(Budget("server", "server", "", D(10)), Budget("wf", "workflow", "wf", D(3)))
    held = books.reserve(CALL, "r", None, D(2))
    before = books.snapshot()
    # Fits on settled spend, not with the open reservation: busy (the caller may wait).
    with pytest.raises(BudgetBusy) as busy:
        books.reserve(CALL, "r", None, D(2))
    assert (busy.value.budget_name, busy.value.key, busy.value.amount) == ("wf", ("wf", ""), D(2))
    assert books.snapshot() == before
    books.settle(held, D(2))
    before = books.snapshot()
    # Can never fit this period: refused, with the figures.
    with pytest.raises(BudgetExceeded) as raised:
        books.reserve(CALL, "r", None, D(2))
    assert (raised.value.budget_name, raised.value.limit) == ("wf", D(3))
    assert (raised.value.spent, raised.value.reserved, raised.value.amount) == (D(2), D(0), D(2))
    assert books.snapshot() == before


def test_a_refused_run_budget_leaves_no_trace() -> None:
    books, _ = ledger()
    with pytest.raises(BudgetExceeded):
        books.reserve(CALL, "r", D(1), D(2))
    assert books.snapshot() == []


def test_settle_and_release_are_exactly_once() -> None:
    books, _ = ledger(Budget("server", "server", "", D(10)))
    first = books.reserve(CALL, "r", None, D(4))
    books.settle(first, D(3))
    books.settle(first, D(3))
    books.release(first)
    assert books.spent("server") == D(3) and books.reserved("server") == 0
    second = books.reserve(CALL, "r", None, D(4))
    books.release(second)
    books.release(second)
    assert books.settle(second, D(4)) == []
    assert books.spent("server") == D(3) and books.reserved("server") == 0


def test_an_actual_above_the_reservation_is_recorded() -> None:
    books, _ = ledger(Budget("server", "server", "", D(10), warn_fraction=1.0))
    reservation = books.reserve(CALL, "r", None, D(9))
    warnings = books.settle(reservation, D(11))
    assert books.spent("server") == D(11)
    assert [w.spent for w in warnings] == [D(11)]
    with pytest.raises(BudgetExceeded):
        books.reserve(CALL, "r", None, D("0.01"))


def test_zero_cost_reservations_fit_a_full_budget() -> None:
    books, _ = ledger(Budget("server", "server", "", D(1)))
    books.settle(books.reserve(CALL, "r", None, D(1)), D(1))
    books.settle(books.reserve(CALL, "r", None, D(0)), D(0))
    with pytest.raises(ValueError):
        books.reserve(CALL, "r", None, D(-1))


# -- warnings and periods --------------------------------------------------------------


def test_warning_fires_once_per_period() -> None:
    books, clock = ledger(Budget("daily", "server", "", D(10), period="day", warn_fraction=0.5))
    assert books.settle(books.reserve(CALL, "r", None, D(4)), D(4)) == []
    warnings = books.settle(books.reserve(CALL, "r", None, D(2)), D(2))
    assert warnings == [BudgetWarning("daily", "2026-11-21", D(10), D(6), 0.5)]
    assert books.settle(books.reserve(CALL, "r", None, D(2)), D(2)) == []
    clock.advance(86_400)
    assert books.spent("daily") == 0  # a new day starts fresh
    assert books.spent("daily", "2026-11-21") == D(8)
    books.settle(books.reserve(CALL, "r", None, D(9)), D(9))
    assert books.snapshot()[0].period_key == "2026-11-22"
    warnings = books.settle(books.reserve(CALL, "r", None, D(0)), D(0))
    assert warnings == []  # 9 crossed the threshold on the first settle
    assert books.spent("daily") == D(9)


def test_spend_lands_in_the_period_of_the_reservation() -> None:
    books, clock = ledger(
        Budget("daily", "server", "", D(10), period="day"), start="2026-11-21T23:59:00"
    )
    reservation = books.reserve(CALL, "r", None, D(5))
    clock.advance(120)
    books.settle(reservation, D(5))
    assert books.spent("daily", "2026-11-21") == D(5)
    assert books.spent("daily") == 0


# -- persistence and updates --------------------------------------------------------------


def test_on_settle_and_load() -> None:
    recorded: list[tuple[str, str, Decimal]] = []
    clock = ManualClock(start=at("2026-11-21T12:00:00"))
    budgets = [
        Budget("monthly", "server", "", D(100), period="month"),
        Budget("openai", "provider", "openai", D(100)),
    ]
    books = BudgetLedger(budgets, clock, on_settle=lambda *row: recorded.append(row))
    books.load({("monthly", "2026-11"): D(85), ("monthly", "2026-10"): D(99)})
    assert books.spent("monthly") == D(85)
    # Already past 80% when loaded: no second warning after a restart.
    assert books.settle(books.reserve(CALL, "r", None, D(5)), D(5)) == []
    assert recorded == [("monthly", "2026-11", D(5)), ("openai", "", D(5))]
    books.settle(books.reserve(CALL, "r", None, D(5)), D(0))
    assert len(recorded) == 2  # nothing spent, nothing to store


def test_a_limit_lowered_below_spent_and_reserved_admits_nothing_until_it_fits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    books, clock = ledger(Budget("daily", "server", "", D(10), period="day"))
    books.settle(books.reserve(CALL, "r", None, D(6)), D(6))
    held = books.reserve(CALL, "r", None, D(2))
    books.update([Budget("daily", "server", "", D(7), period="day")])
    assert "below the 8 spent and reserved" in caplog.text
    assert books.spent("daily") == D(6) and books.reserved("daily") == D(2)
    with pytest.raises(BudgetExceeded):
        books.reserve(CALL, "r", None, D(2))
    books.settle(held, D(1))
    with pytest.raises(BudgetExceeded):  # 7 spent of 7: still nothing new
        books.reserve(CALL, "r", None, D("0.01"))
    clock.advance(86_400)  # a new period fits again
    books.reserve(CALL, "r", None, D(2))


def test_a_redefined_budget_counts_from_zero_in_its_new_period() -> None:
    books, _ = ledger(Budget("b", "server", "", D(10), period="month"))
    books.settle(books.reserve(CALL, "r", None, D(6)), D(6))
    # Daily now: today's spend under the new definition starts at zero...
    books.update([Budget("b", "server", "", D(10), period="day")])
    assert books.spent("b") == 0
    books.settle(books.reserve(CALL, "r", None, D(1)), D(1))
    # ...and back to monthly: the month's old figure (6) was counted under the old
    # definition and is not resurrected; only what follows the change counts.
    books.update([Budget("b", "server", "", D(10), period="month")])
    assert books.spent("b") == 0
    # An unchanged definition (only the limit moves) keeps its spend.
    books.settle(books.reserve(CALL, "r", None, D(3)), D(3))
    books.update([Budget("b", "server", "", D(20), period="month")])
    assert books.spent("b") == D(3)


def test_run_budgets_and_close_run() -> None:
    books, _ = ledger()
    reservation = books.reserve(CALL, "run-9", D(1), D("0.6"))
    with pytest.raises(BudgetBusy) as raised:
        books.reserve(CALL, "run-9", D(1), D("0.6"))
    assert raised.value.budget_name == "run:run-9"
    books.reserve(CALL, "run-8", D(1), D("0.6"))  # another run, its own budget
    books.settle(reservation, D("0.5"))
    views = {view.name: view for view in books.snapshot()}
    assert views["run:run-9"].scope_kind == "run" and views["run:run-9"].spent == D("0.5")
    books.close_run("run-9")
    assert [view.name for view in books.snapshot()] == ["run:run-8"]


# -- the hard ceiling under interleaving ----------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(1, 50),
    run_limit=st.none() | st.integers(1, 50),
    data=st.data(),
)
def test_settled_plus_reserved_never_exceeds_the_limit(
    limit: int, run_limit: int | None, data: st.DataObject
) -> None:
    books, _ = ledger(
        Budget("server", "server", "", D(limit)),
        Budget("openai", "provider", "openai", D(limit) * 2),
    )
    open_calls: list[Reservation] = []

    def check() -> None:
        for view in books.snapshot():
            assert view.spent + view.reserved <= view.limit

    for _ in range(data.draw(st.integers(1, 60))):
        finish: bool = data.draw(st.booleans())
        if open_calls and finish:
            reservation = open_calls.pop(data.draw(st.integers(0, len(open_calls) - 1)))
            if data.draw(st.booleans()):
                cents = data.draw(st.integers(0, int(reservation.amount * 100)))
                books.settle(reservation, D(cents) / 100)
            else:
                books.release(reservation)
        else:
            worst = D(data.draw(st.integers(0, 2000))) / 100
            before = books.snapshot()
            try:
                rl = None if run_limit is None else D(run_limit)
                open_calls.append(books.reserve(CALL, "run", rl, worst))
            except (BudgetExceeded, BudgetBusy):
                assert books.snapshot() == before
        check()
    for reservation in open_calls:
        books.release(reservation)
    assert all(view.reserved == 0 for view in books.snapshot())


# -- restored reservations (left open by a crash) ---------------------------------------


def test_a_restored_reservation_counts_until_settled_at_its_worst_case() -> None:
    ledger_, _ = ledger(Budget("day", "server", "", D(10), period="day"))
    keys = (("day", "2026-11-21"), (run_budget_name("r1"), ""))
    ledger_.load({(run_budget_name("r1"), ""): D(2)})
    restored = Reservation(D(6), "r1", keys, id="a")
    ledger_.restore(restored)
    assert ledger_.reserved("day") == D(6)
    # Fail closed: the next call finds only what the open reservation leaves.
    with pytest.raises(BudgetBusy):
        ledger_.reserve(CALL, "r1", D(10), D(5))
    ledger_.settle(restored, restored.amount)
    assert ledger_.spent("day") == D(6)
    assert ledger_.spent(run_budget_name("r1"), "") == D(8)
    assert ledger_.reserved("day") == 0
    # The run's ceiling counts what it spent before the restart.
    ledger_.reserve(CALL, "r1", D(10), D(2))
    with pytest.raises(BudgetBusy):  # 8 + 1 fits once the 2 held settle
        ledger_.reserve(CALL, "r1", D(10), D(1))
    with pytest.raises(BudgetExceeded):  # 8 + 3 never does
        ledger_.reserve(CALL, "r1", D(10), D(3))


# -- waiting for room, in arrival order ----------------------------------------------------


async def test_waiters_are_served_in_arrival_order_and_newcomers_queue_behind() -> None:
    books, _ = ledger(Budget("b", "server", "", D(10)))
    first = books.reserve(CALL, "r", None, D(8))
    # Two calls wait for the 8 held: A (needs 6), then B (needs 2).
    a, b = books.ticket(), books.ticket()
    for ticket, amount in ((a, D(6)), (b, D(2))):
        with pytest.raises(BudgetBusy) as busy:
            books.reserve(CALL, "r", None, amount, ticket)
        books.enqueue(ticket, busy.value.key)
    assert books.waiting("b") == 2
    # B would fit (8 + 2 <= 10) but A came first: B, and any newcomer, wait behind A.
    with pytest.raises(BudgetBusy):
        books.reserve(CALL, "r", None, D(2), b)
    with pytest.raises(BudgetBusy):
        books.reserve(CALL, "r", None, D(1))
    woken = asyncio.ensure_future(books.wait_for_room())
    await asyncio.sleep(0)
    assert not woken.done()
    books.settle(first, D(2))
    await asyncio.wait_for(woken, 1)
    held_a = books.reserve(CALL, "r", None, D(6), a)
    books.dequeue(a)
    held_b = books.reserve(CALL, "r", None, D(2), b)
    books.dequeue(b)
    assert books.waiting("b") == 0
    assert (books.spent("b"), books.reserved("b")) == (D(2), D(8))
    books.release(held_a)
    books.release(held_b)


def test_a_call_larger_than_what_is_left_fails_at_once_even_with_others_waiting() -> None:
    books, _ = ledger(Budget("b", "server", "", D(10)))
    books.settle(books.reserve(CALL, "r", None, D(7)), D(7))
    books.reserve(CALL, "r", None, D(2))
    with pytest.raises(BudgetExceeded) as raised:
        books.reserve(CALL, "r", None, D(4))
    assert (raised.value.limit, raised.value.spent, raised.value.amount) == (D(10), D(7), D(4))
