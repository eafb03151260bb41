"""Governance through ControlService: quotas, budgets and breakers as the
policy sets them, runtime changes that persist across restarts (tombstones
included) and invalid input rejected field by field. Policy files on their
own: tests/unit/governance/test_policy.py."""

from __future__ import annotations

from collections.abc import Awaitable
from decimal import Decimal
from typing import Any

import grpc
import pytest

from podium.core.clock import ManualClock
from podium.governance.policy import Policy
from podium.testing import (
    Stubs,
    create_workflow,
    error_info,
    field_violations,
    money_nanos,
    of_type,
    run_to_end,
    serving,
    step_of,
)
from podium.v1 import common_pb2, control_service_pb2, event_pb2, run_pb2

E = event_pb2
R = run_pb2

C = control_service_pb2
T0 = 1_700_000_000.0  # ManualClock's default start: 2023-11-14T22:13:20Z
LARGE = "model:simulated/sim-large"


def usd(text: str) -> common_pb2.Money:
    nanos = int(Decimal(text) * 1_000_000_000)
    return common_pb2.Money(currency_code="USD", units=int(nanos / 10**9), nanos=nanos % 10**9)


def seconds(timestamp: Any) -> float:
    return float(timestamp.ToNanoseconds()) / 1e9


async def refused(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """The error an RPC fails with (it must fail)."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def quotas(stubs: Stubs) -> dict[str, C.Quota]:
    response = await stubs.control.ListQuotas(C.ListQuotasRequest())
    return {quota.name: quota for quota in response.quotas}


async def budgets(stubs: Stubs) -> dict[str, C.Budget]:
    response = await stubs.control.ListBudgets(C.ListBudgetsRequest())
    return {budget.name: budget for budget in response.budgets}


async def breakers(stubs: Stubs) -> dict[str, C.Breaker]:
    response = await stubs.control.ListBreakers(C.ListBreakersRequest())
    return {breaker.name: breaker for breaker in response.breakers}


async def llm_workflow(stubs: Stubs, workflow_id: str, **config: Any) -> None:
    """One `llm` step "ask" on the simulated provider."""
    step = {"id": "ask", "agent": "llm", "config": {"prompt": "Hello", **config}}
    await create_workflow(stubs, workflow_id, {"steps": [step]})


# -- listing what the policy says ------------------------------------------------------------


LISTED = {
    "quotas": [
        {
            "name": "sim-rpm",
            "scope": "provider:simulated",
            "dimension": "requests",
            "limit": 60,
            "burst": 5,
        },
        {
            "name": "large-tokens",
            "scope": LARGE,
            "dimension": "tokens",
            "limit": 100_000,
        },
        {"name": "llm-calls", "scope": "agent:llm", "dimension": "concurrency", "limit": 3},
    ],
    "budgets": [
        {
            "name": "daily",
            "scope": "server",
            "limit": "10",
            "period": "day",
            "time_zone": "Asia/Tokyo",
            "warn_fraction": 0.5,
        },
        {"name": "sim-monthly", "scope": "provider:simulated", "limit": "2.5", "period": "month"},
        {"name": "llm-total", "scope": "agent:llm", "limit": "0.000001"},
    ],
    "breakers": {"overrides": {LARGE: {"failure_threshold": 1, "cooldown": 60}}},
}


async def test_list_quotas_and_budgets_reflect_the_policy(db_path: str) -> None:
    async with serving(db_path, policy=Policy.model_validate(LISTED), clock=ManualClock()) as (
        _,
        stubs,
    ):
        listed_quotas = await quotas(stubs)
        listed_budgets = await budgets(stubs)

    assert list(listed_quotas) == ["sim-rpm", "large-tokens", "llm-calls"]
    rpm, tokens, calls = listed_quotas.values()
    assert (rpm.scope.kind, rpm.scope.value) == (C.SCOPE_KIND_PROVIDER, "simulated")
    assert (rpm.dimension, rpm.limit, rpm.burst, rpm.available) == (
        C.QUOTA_DIMENSION_REQUESTS,
        60,
        5,
        5,
    )
    assert not rpm.HasField("paused_until")
    assert (tokens.scope.kind, tokens.scope.value) == (C.SCOPE_KIND_MODEL, "simulated/sim-large")
    assert tokens.dimension == C.QUOTA_DIMENSION_TOKENS
    assert tokens.available == 100_000  # no burst: one minute's worth
    assert (calls.scope.kind, calls.scope.value) == (C.SCOPE_KIND_AGENT, "llm")
    assert (calls.dimension, calls.limit, calls.available) == (C.QUOTA_DIMENSION_CONCURRENCY, 3, 3)

    assert list(listed_budgets) == ["daily", "sim-monthly", "llm-total"]
    daily, monthly, total = listed_budgets.values()
    assert daily.scope == C.Scope(kind=C.SCOPE_KIND_SERVER)
    assert daily.limit == usd("10")
    assert (daily.period, daily.time_zone, daily.warn_fraction) == (
        C.BUDGET_PERIOD_DAY,
        "Asia/Tokyo",
        0.5,
    )
    # 22:13 UTC on 2023-11-14 is already the 15th in Tokyo.
    assert daily.period_key == "2023-11-15"
    assert money_nanos(daily.spent) == money_nanos(daily.reserved) == 0
    assert monthly.scope == C.Scope(kind=C.SCOPE_KIND_PROVIDER, value="simulated")
    assert (monthly.limit, monthly.period, monthly.period_key) == (
        usd("2.5"),
        C.BUDGET_PERIOD_MONTH,
        "2023-11",
    )
    assert (monthly.time_zone, monthly.warn_fraction) == ("UTC", 0.8)
    assert total.scope == C.Scope(kind=C.SCOPE_KIND_AGENT, value="llm")
    assert (total.limit, total.period, total.period_key) == (
        usd("0.000001"),
        C.BUDGET_PERIOD_NONE,
        "all",
    )


async def test_breakers_follow_the_policy_and_reset_closes_them(db_path: str) -> None:
    clock = ManualClock()
    rules = Policy.model_validate(
        {"breakers": {"overrides": {LARGE: {"failure_threshold": 1, "cooldown": 60}}}}
    )
    async with serving(db_path, policy=rules, clock=clock) as (_, stubs):
        # Listed before any call: the configured provider's, its models' and the policy's.
        before = await breakers(stubs)
        assert {"provider:simulated", "model:simulated/sim-small", LARGE} <= set(before)
        assert all(
            (b.state, b.calls, b.cause) == (C.BREAKER_STATE_CLOSED, 0, "") for b in before.values()
        )
        failing = {"fail_with": "server_error", "fail_models": ["sim-large"]}
        await llm_workflow(stubs, "large-fails", model="sim-large", options=failing)
        run, events = await run_to_end(stubs, "large-fails")
        assert run.state == R.RUN_STATE_FAILED
        assert [e.breaker for e in of_type(events, E.RUN_EVENT_TYPE_CIRCUIT_OPENED)] == [LARGE]

        board = await breakers(stubs)
        used = {name for name, breaker in board.items() if breaker.calls}
        assert used == {"provider:simulated", LARGE, "agent:llm"}
        large = board[LARGE]
        assert (large.state, large.failures, large.calls) == (C.BREAKER_STATE_OPEN, 1, 1)
        assert "server_error" in large.cause
        assert seconds(large.half_open_time) == pytest.approx(T0 + 60, abs=1e-3)
        # The defaults (5 failures) for the others.
        for name in ("provider:simulated", "agent:llm"):
            assert (board[name].state, board[name].failures) == (C.BREAKER_STATE_CLOSED, 1)
            assert not board[name].HasField("half_open_time")

        reset = await stubs.control.ResetBreaker(C.ResetBreakerRequest(name=LARGE))
        assert (reset.breaker.name, reset.breaker.state) == (LARGE, C.BREAKER_STATE_CLOSED)
        assert (reset.breaker.failures, reset.breaker.calls) == (0, 0)
        assert not reset.breaker.HasField("half_open_time")
        assert (await breakers(stubs))[LARGE].state == C.BREAKER_STATE_CLOSED

        # Closed: a sim-large call goes through at once, within the cooldown.
        await llm_workflow(stubs, "large", model="sim-large")
        run, events = await run_to_end(stubs, "large")
        assert run.state == R.RUN_STATE_SUCCEEDED, step_of(run, "ask").failure
        assert [e.model for e in of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)] == ["sim-large"]
        assert clock.now() == T0

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stubs.control.ResetBreaker(C.ResetBreakerRequest(name="model:simulated/nope"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(caught.value).reason == "BREAKER_NOT_FOUND"
    # The refusal names the breakers that do exist, so an operator can correct the name.
    details = caught.value.details() or ""
    assert "'model:simulated/nope' not found" in details
    assert LARGE in details and "provider:simulated" in details


# -- runtime changes, persisted ------------------------------------------------------------


PERSISTED = {
    "quotas": [
        {"name": "policy-q", "scope": "provider:simulated", "dimension": "requests", "limit": 60}
    ],
    "budgets": [{"name": "policy-b", "scope": "server", "limit": "5"}],
}


async def test_runtime_changes_persist_across_restarts(db_path: str) -> None:
    rules = Policy.model_validate(PERSISTED)
    runtime_q = C.Quota(
        name="runtime-q",
        scope=C.Scope(kind=C.SCOPE_KIND_AGENT, value="llm"),
        dimension=C.QUOTA_DIMENSION_CONCURRENCY,
        limit=2,
    )
    runtime_b = C.Budget(
        name="runtime-b",
        scope=C.Scope(kind=C.SCOPE_KIND_WORKFLOW, value="wf"),
        limit=usd("1.5"),
        period=C.BUDGET_PERIOD_MONTH,
        time_zone="Europe/Paris",
        warn_fraction=0.9,
    )
    raised_b = C.Budget(name="policy-b", scope=C.Scope(kind=C.SCOPE_KIND_SERVER), limit=usd("7.25"))

    async with serving(db_path, policy=rules) as (_, stubs):
        assert set(await quotas(stubs)) == {"policy-q"}
        assert (await budgets(stubs))["policy-b"].limit == usd("5")
        updated = await stubs.control.UpdateQuota(C.UpdateQuotaRequest(quota=runtime_q))
        assert (updated.quota.name, updated.quota.limit) == ("runtime-q", 2)
        await stubs.control.UpdateBudget(C.UpdateBudgetRequest(budget=runtime_b))
        raised = await stubs.control.UpdateBudget(C.UpdateBudgetRequest(budget=raised_b))
        assert raised.budget.limit == usd("7.25")
        # A quota of the policy file, deleted at runtime.
        await stubs.control.DeleteQuota(C.DeleteQuotaRequest(name="policy-q"))
        assert set(await quotas(stubs)) == {"runtime-q"}

    async with serving(db_path, policy=rules) as (_, stubs):
        listed_quotas = await quotas(stubs)
        listed_budgets = await budgets(stubs)
        assert set(listed_quotas) == {"runtime-q"}  # the tombstone holds
        q = listed_quotas["runtime-q"]
        assert (q.scope, q.dimension, q.limit, q.available) == (
            runtime_q.scope,
            C.QUOTA_DIMENSION_CONCURRENCY,
            2,
            2,
        )
        assert set(listed_budgets) == {"policy-b", "runtime-b"}
        assert listed_budgets["policy-b"].limit == usd("7.25")
        b = listed_budgets["runtime-b"]
        assert (b.scope, b.limit, b.period, b.time_zone, b.warn_fraction) == (
            runtime_b.scope,
            usd("1.5"),
            C.BUDGET_PERIOD_MONTH,
            "Europe/Paris",
            0.9,
        )

        await stubs.control.DeleteQuota(C.DeleteQuotaRequest(name="runtime-q"))
        await stubs.control.DeleteBudget(C.DeleteBudgetRequest(name="runtime-b"))
        await stubs.control.DeleteBudget(C.DeleteBudgetRequest(name="policy-b"))
        gone = [
            await refused(stubs.control.DeleteQuota(C.DeleteQuotaRequest(name="policy-q"))),
            await refused(stubs.control.DeleteBudget(C.DeleteBudgetRequest(name="runtime-b"))),
        ]
        assert [error.code() for error in gone] == [grpc.StatusCode.NOT_FOUND] * 2

    async with serving(db_path, policy=rules) as (_, stubs):
        assert await quotas(stubs) == {}
        assert await budgets(stubs) == {}


# -- invalid input ----------------------------------------------------------------------


GOOD_QUOTA = {
    "name": "q",
    "scope": C.Scope(kind=C.SCOPE_KIND_PROVIDER, value="simulated"),
    "dimension": C.QUOTA_DIMENSION_REQUESTS,
    "limit": 60.0,
}
GOOD_BUDGET = {"name": "b", "scope": C.Scope(kind=C.SCOPE_KIND_SERVER), "limit": usd("1")}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"limit": -1.0}, "quota.limit"),
        ({"limit": 0.0}, "quota.limit"),
        ({"scope": C.Scope(kind=C.SCOPE_KIND_UNSPECIFIED, value="x")}, "quota.scope"),
        ({"scope": C.Scope(kind=C.SCOPE_KIND_SERVER)}, "quota.scope"),
        ({"scope": C.Scope(kind=C.SCOPE_KIND_MODEL, value="sim-large")}, "quota.scope"),
        ({"dimension": C.QUOTA_DIMENSION_UNSPECIFIED}, "quota.dimension"),
        ({"name": ""}, "quota.name"),
    ],
)
async def test_an_invalid_quota_is_invalid_argument_naming_the_field(
    stubs: Stubs, change: dict[str, Any], field: str
) -> None:
    quota = C.Quota(**{**GOOD_QUOTA, **change})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.control.UpdateQuota(C.UpdateQuotaRequest(quota=quota))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(caught.value)] == [field]
    assert error_info(caught.value).reason == "INVALID_POLICY"
    assert await quotas(stubs) == {}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"limit": usd("-1")}, "budget.limit"),
        ({"scope": C.Scope(kind=C.SCOPE_KIND_UNSPECIFIED, value="x")}, "budget.scope"),
        ({"scope": C.Scope(kind=C.SCOPE_KIND_MODEL, value="simulated/sim-large")}, "budget.scope"),
        ({"time_zone": "Mars/Olympus_Mons"}, "budget.time_zone"),
        ({"warn_fraction": 1.5}, "budget.warn_fraction"),
    ],
)
async def test_an_invalid_budget_is_invalid_argument_naming_the_field(
    stubs: Stubs, change: dict[str, Any], field: str
) -> None:
    budget = C.Budget(**{**GOOD_BUDGET, **change})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.control.UpdateBudget(C.UpdateBudgetRequest(budget=budget))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(caught.value)] == [field]
    assert await budgets(stubs) == {}


async def spend_some(db_path: str) -> tuple[Decimal, common_pb2.Money]:
    """Runs one llm call under budget "cap" (server, $1); returns its cost and
    the budget's spent as listed."""
    rules = Policy.model_validate({"budgets": [{"name": "cap", "scope": "server", "limit": "1"}]})
    async with serving(db_path, policy=rules) as (_, stubs):
        await llm_workflow(stubs, "ask")
        run, _ = await run_to_end(stubs, "ask")
        assert run.state == R.RUN_STATE_SUCCEEDED, step_of(run, "ask").failure
        cap = (await budgets(stubs))["cap"]
    assert money_nanos(cap.spent) == money_nanos(run.cost) > 0
    cost = Decimal(money_nanos(run.cost)) / 1_000_000_000
    return cost, cap.spent


async def test_a_budget_limit_below_the_period_spend_is_accepted_and_admits_nothing_new(
    db_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    cost, spent = await spend_some(db_path)
    rules = Policy.model_validate({"budgets": [{"name": "cap", "scope": "server", "limit": "1"}]})
    below = C.Budget(name="cap", scope=C.Scope(kind=C.SCOPE_KIND_SERVER), limit=usd(str(cost / 2)))
    async with serving(db_path, policy=rules) as (_, stubs):
        assert (await budgets(stubs))["cap"].spent == spent  # spend survives a restart
        # An operator may cut a budget below what it spent: it is logged, and then
        # nothing new fits until spending does (in a later period, or a higher limit).
        await stubs.control.UpdateBudget(C.UpdateBudgetRequest(budget=below))
        assert "below the" in caplog.text and "admits no new call" in caplog.text
        cap = (await budgets(stubs))["cap"]
        assert cap.limit == below.limit and cap.spent == spent
        await llm_workflow(stubs, "ask-again")
        run, _ = await run_to_end(stubs, "ask-again")
        assert run.state == R.RUN_STATE_FAILED
        assert step_of(run, "ask").failure.type == "podium.BudgetExceeded"
        assert not step_of(run, "ask").failure.retryable


async def test_deleting_what_does_not_exist_is_not_found(stubs: Stubs) -> None:
    errors = [
        await refused(stubs.control.DeleteQuota(C.DeleteQuotaRequest(name="ghost"))),
        await refused(stubs.control.DeleteBudget(C.DeleteBudgetRequest(name="ghost"))),
        await refused(stubs.control.ResetBreaker(C.ResetBreakerRequest(name="agent:ghost"))),
    ]
    assert [error.code() for error in errors] == [grpc.StatusCode.NOT_FOUND] * 3
    assert [error_info(error).reason for error in errors] == [
        "QUOTA_NOT_FOUND",
        "BUDGET_NOT_FOUND",
        "BREAKER_NOT_FOUND",
    ]
