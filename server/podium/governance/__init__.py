"""Governance of LLM calls: quotas (rate and concurrency), budgets (money),
circuit breakers, prices, and alerts about them. Pure logic on an injectable clock; the LLM
gateway and ControlService wire it up."""

from podium.governance.breakers import (
    BreakerBoard,
    BreakerSettings,
    BreakerState,
    BreakerView,
    CircuitBreaker,
    Outcome,
    classify,
)
from podium.governance.buckets import TokenBucket
from podium.governance.budgets import (
    Budget,
    BudgetError,
    BudgetExceeded,
    BudgetLedger,
    BudgetView,
    BudgetWarning,
    Reservation,
    run_budget_name,
)
from podium.governance.prices import Price, PriceTable
from podium.governance.quotas import (
    Admission,
    Blocked,
    ConcurrencyLimit,
    Demand,
    LeaseView,
    QuotaBook,
    QuotaSnapshot,
    QuotaTimeout,
    RateLimit,
    RateView,
    Take,
)
from podium.governance.scopes import CallScopes, Scope

__all__ = [
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
]
