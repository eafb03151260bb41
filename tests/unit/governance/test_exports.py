"""The public surface of podium.governance is curated: this test pins it, so
that a change to it is a deliberate one."""

from __future__ import annotations

import podium.governance as governance

EXPECTED = {
    "Admission",
    "Blocked",
    "BreakerBoard",
    "BreakerSettings",
    "BreakerState",
    "BreakerView",
    "Budget",
    "BudgetError",
    "BudgetExceeded",
    "BudgetLedger",
    "BudgetView",
    "BudgetWarning",
    "CallScopes",
    "CircuitBreaker",
    "ConcurrencyLimit",
    "Demand",
    "LeaseView",
    "Outcome",
    "Price",
    "PriceTable",
    "QuotaBook",
    "QuotaSnapshot",
    "QuotaTimeout",
    "RateLimit",
    "RateView",
    "Reservation",
    "Scope",
    "Take",
    "TokenBucket",
    "classify",
    "run_budget_name",
}


def test_exports_are_pinned() -> None:
    assert set(governance.__all__) == EXPECTED
    assert len(governance.__all__) == len(EXPECTED)


def test_every_export_exists() -> None:
    for name in governance.__all__:
        assert getattr(governance, name) is not None
