"""The requests the client builds (podium.client._requests): Money from
decimals, enums from their names, a ValueError naming the field otherwise."""

from __future__ import annotations

from decimal import Decimal

import pytest

from podium.client._requests import get_spend, start_run, update_budget, update_quota
from podium.v1 import control_service_pb2, event_pb2, run_pb2

C, E, R = control_service_pb2, event_pb2, run_pb2


def test_requests_carry_money_and_enums() -> None:
    budget = update_budget("b", "agent:llm", "0.25", "day", "Europe/Paris", 0.5).budget
    assert (budget.limit.units, budget.limit.nanos, budget.limit.currency_code) == (
        0,
        250_000_000,
        "USD",
    )
    assert budget.period == C.BUDGET_PERIOD_DAY
    quota = update_quota("q", "provider:openai", "output_tokens", 1000, 0).quota
    assert quota.dimension == C.QUOTA_DIMENSION_OUTPUT_TOKENS
    with pytest.raises(ValueError, match=r"quota\.dimension"):
        update_quota("q", "provider:openai", "watts", 1, 0)
    with pytest.raises(ValueError, match=r"budget\.limit"):
        update_budget("b", "server", "lots", "none", "UTC", 0.8)
    run = start_run("erp", None, None, None, 0, 0, Decimal("0.5"))
    assert (run.max_cost.units, run.max_cost.nanos) == (0, 500_000_000)
    assert not start_run("erp", None, None, None, 0, 0).HasField("max_cost")
    spend = get_spend("provider", "month", "2026-11")
    assert (spend.scope_kind, spend.scope_value, spend.period) == (
        C.SCOPE_KIND_PROVIDER,
        "",
        C.BUDGET_PERIOD_MONTH,
    )
    assert get_spend(None, "day", "").scope_kind == C.SCOPE_KIND_UNSPECIFIED
