"""Governance at the LLM gateway, through a real server: quota waits, a
provider's 429, circuit breakers with fallbacks and probes, caller errors,
budgets (per run and per server) and recorded spend.

Where timing matters the server runs on a ManualClock: nothing sleeps for
real beyond the simulated provider's latency and short polls."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from podium.core.clock import ManualClock
from podium.governance.policy import Policy
from podium.testing import (
    FINAL_EVENT_TYPES,
    Stubs,
    collect_events,
    create_workflow,
    eventually,
    get_run,
    money_nanos,
    of_type,
    plain,
    run_to_end,
    serving,
    start_run,
    step_of,
)
from podium.v1 import common_pb2, control_service_pb2, event_pb2, run_pb2

E = event_pb2
R = run_pb2

C = control_service_pb2
T0 = 1_700_000_000.0  # ManualClock's default start
FINAL_RUN_STATES = frozenset(
    {
        R.RUN_STATE_SUCCEEDED,
        R.RUN_STATE_FAILED,
        R.RUN_STATE_CANCELLED,
        R.RUN_STATE_PARTIALLY_SUCCEEDED,
    }
)
SIM_SMALL = (Decimal("0.50"), Decimal("1.50"))  # USD per million input / output tokens
LARGE = "model:simulated/sim-large"


# -- helpers ------------------------------------------------------------------------------


def policy(data: dict[str, Any]) -> Policy:
    return Policy.model_validate(data)


def llm(step_id: str, *depends_on: str, **config: Any) -> dict[str, Any]:
    """An `llm` step on the simulated provider; `config` is the agent's config."""
    return {"id": step_id, "agent": "llm", "dependsOn": list(depends_on), "config": config}


def usd(amount: Decimal) -> common_pb2.Money:
    nanos = int(amount * 1_000_000_000)
    assert nanos == amount * 1_000_000_000, f"{amount} is not a whole number of nanos"
    return common_pb2.Money(currency_code="USD", units=nanos // 10**9, nanos=nanos % 10**9)


def nanos_of(amount: Decimal) -> int:
    return money_nanos(usd(amount))


def seconds(timestamp: Any) -> float:
    return float(timestamp.ToNanoseconds()) / 1e9


def small_cost(prompt: str, max_tokens: int) -> Decimal:
    """What one sim-small call costs when its answer is cut at `max_tokens`
    (the simulated answer is longer than that for any prompt): ceil(chars / 4)
    input tokens, `max_tokens` output tokens."""
    input_tokens = math.ceil(len(prompt) / 4)
    return (input_tokens * SIM_SMALL[0] + max_tokens * SIM_SMALL[1]) / Decimal(1_000_000)


async def events_so_far(stubs: Stubs, run: str) -> list[event_pb2.RunEvent]:
    last = (await get_run(stubs, run)).last_sequence
    return await collect_events(stubs, run, limit=last) if last else []


async def wait_event(
    stubs: Stubs,
    run: str,
    type_: event_pb2.RunEventType.ValueType,
    message: str | None = None,
) -> list[event_pb2.RunEvent]:
    """Polls until the run has an event of `type_` (with `message`); returns
    the events so far."""
    seen: list[event_pb2.RunEvent] = []

    async def arrived() -> bool:
        seen[:] = await events_so_far(stubs, run)
        return any(e.type == type_ and message in (None, e.message) for e in seen)

    await eventually(arrived, what=f"{E.RunEventType.Name(type_)} {message or ''}")
    return seen


async def sleepers(clock: ManualClock, count: int = 1) -> None:
    await eventually(lambda: clock.sleepers >= count, what=f"{count} timers armed")


async def drive_to_end(
    stubs: Stubs, clock: ManualClock, run: str, step: float = 1.0
) -> tuple[run_pb2.Run, list[event_pb2.RunEvent]]:
    """Advances the clock by `step` at each poll until the run ends; returns
    (GetRun, events)."""

    async def ended() -> bool:
        if (await get_run(stubs, run)).state in FINAL_RUN_STATES:
            return True
        clock.advance(step)
        await asyncio.sleep(0.05)
        return False

    await eventually(ended, what=f"{run} driven to its end")
    events = await collect_events(stubs, run)
    assert events[-1].type in FINAL_EVENT_TYPES, events[-1]
    return await get_run(stubs, run), events


async def finish(stubs: Stubs, run: str) -> tuple[run_pb2.Run, list[event_pb2.RunEvent]]:
    """Watches the run to its end without moving the clock; returns (GetRun, events)."""
    events = await collect_events(stubs, run)
    assert events[-1].type in FINAL_EVENT_TYPES, events[-1]
    return await get_run(stubs, run), events


def at(moment: float) -> Any:
    return pytest.approx(moment, abs=1e-3)


def breakers_by_name(response: C.ListBreakersResponse) -> dict[str, C.Breaker]:
    return {breaker.name: breaker for breaker in response.breakers}


def types(events: Sequence[event_pb2.RunEvent]) -> list[str]:
    return [E.RunEventType.Name(e.type) for e in events]


# -- quotas ----------------------------------------------------------------------------


async def test_quota_waits_are_shown_and_calls_never_exceed_the_burst(db_path: str) -> None:
    clock = ManualClock()
    rules = policy(
        {
            "quotas": [
                {
                    "name": "sim-rpm",
                    "scope": "provider:simulated",
                    "dimension": "requests",
                    "limit": 60,
                    "burst": 1,
                }
            ]
        }
    )
    spec = {
        "steps": [
            {
                "id": "ask",
                "agent": "llm",
                "forEach": {"items": "input.items"},
                "input": {"prompt": "item"},
                "config": {"max_tokens": 16},
            }
        ]
    }
    async with serving(db_path, policy=rules, clock=clock) as (_, stubs):
        await create_workflow(stubs, "fan", spec)
        run = await start_run(stubs, "fan", {"items": ["one", "two", "three"]})

        # The first instant: one call (the burst), the two other items wait
        # for the bucket to refill.
        async def first_instant() -> bool:
            events = await events_so_far(stubs, run.name)
            return len(of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)) >= 1 and clock.sleepers >= 2

        await eventually(first_instant, what="one call made, two items waiting")
        await asyncio.sleep(0.1)  # room for a call that should not happen
        early = await events_so_far(stubs, run.name)
        assert len(of_type(early, E.RUN_EVENT_TYPE_LLM_CALL)) == 1
        waiting = of_type(early, E.RUN_EVENT_TYPE_STEP_WAITING)
        assert waiting, types(early)
        assert {e.message for e in waiting} == {"quota:sim-rpm"}
        view = await get_run(stubs, run.name)
        assert step_of(view, "ask").reason == "quota:sim-rpm"
        quotas = (await stubs.control.ListQuotas(C.ListQuotasRequest())).quotas
        assert [(q.name, q.limit, q.burst) for q in quotas] == [("sim-rpm", 60, 1)]
        assert quotas[0].available == pytest.approx(0.0)

        final, events = await drive_to_end(stubs, clock, run.name)

    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    assert step_of(final, "ask").items_succeeded == 3
    calls = of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)
    assert len(calls) == 3
    # 60 a minute with a burst of 1: at most one call per instant, and by any
    # instant T at most 1 + (T - T0) calls.
    per_instant = Counter(seconds(e.time) for e in calls)
    assert max(per_instant.values()) == 1, per_instant
    assert per_instant[T0] == 1
    for n, moment in enumerate(sorted(seconds(e.time) for e in calls), start=1):
        assert n <= 1 + (moment - T0) + 1e-6
    assert {e.message for e in of_type(events, E.RUN_EVENT_TYPE_STEP_WAITING)} == {"quota:sim-rpm"}
    resumed = [e.message for e in of_type(events, E.RUN_EVENT_TYPE_STEP_PROGRESS)]
    assert "resumed after quota:sim-rpm" in resumed


async def test_a_429_pauses_the_bucket_and_is_no_breaker_failure(db_path: str) -> None:
    clock = ManualClock()
    rules = policy(
        {
            "quotas": [
                {
                    "name": "sim-rpm",
                    "scope": "provider:simulated",
                    "dimension": "requests",
                    "limit": 600,
                    "burst": 10,
                }
            ],
            # One failure would open these, were a 429 counted as one.
            "breakers": {"defaults": {"failure_threshold": 1}},
        }
    )
    options = {"fail_with": "rate_limited", "fail_times": 1, "retry_after": 5}
    step = llm("ask", prompt="Hello there", max_tokens=16, options=options)
    step["retry"] = [{"errorEquals": ["provider.rate_limited"], "interval": "1s", "maxAttempts": 3}]
    async with serving(db_path, policy=rules, clock=clock) as (_, stubs):
        await create_workflow(stubs, "limited", {"steps": [step]})
        run = await start_run(stubs, "limited")
        events = await wait_event(stubs, run.name, E.RUN_EVENT_TYPE_STEP_RETRYING)
        retrying = of_type(events, E.RUN_EVENT_TYPE_STEP_RETRYING)[0]
        assert retrying.failure.type == "provider.rate_limited"

        # The provider said "retry after 5 s": the bucket is paused until then.
        quotas = (await stubs.control.ListQuotas(C.ListQuotasRequest())).quotas
        assert len(quotas) == 1
        assert quotas[0].HasField("paused_until")
        assert seconds(quotas[0].paused_until) == at(T0 + 5)
        assert quotas[0].available == 0
        # ... and no breaker counted it.
        board = breakers_by_name(await stubs.control.ListBreakers(C.ListBreakersRequest()))
        assert "provider:simulated" in board
        for breaker in board.values():
            assert breaker.state == C.BREAKER_STATE_CLOSED, breaker
            assert breaker.failures == 0, breaker

        # The retry comes after 1 s and waits for the pause to end.
        await sleepers(clock)
        clock.advance(1.0)
        events = await wait_event(
            stubs, run.name, E.RUN_EVENT_TYPE_STEP_WAITING, message="quota:sim-rpm"
        )
        assert not of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)
        await sleepers(clock)
        clock.advance(3.9)
        await asyncio.sleep(0.1)
        events = await events_so_far(stubs, run.name)
        assert not of_type(events, E.RUN_EVENT_TYPE_LLM_CALL), "called before retry-after"
        await sleepers(clock)  # still waiting for the pause to end, however long it took
        clock.advance(0.1)
        final, events = await finish(stubs, run.name)
        board = breakers_by_name(await stubs.control.ListBreakers(C.ListBreakersRequest()))

    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    assert len(step_of(final, "ask").attempts) == 2
    calls = of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)
    assert len(calls) == 1
    assert seconds(calls[0].time) == at(T0 + 5)
    assert not of_type(events, E.RUN_EVENT_TYPE_CIRCUIT_OPENED)
    assert all(b.state == C.BREAKER_STATE_CLOSED and b.failures == 0 for b in board.values())


# -- circuit breakers --------------------------------------------------------------------


BREAKER_POLICY = {"breakers": {"overrides": {LARGE: {"failure_threshold": 2, "cooldown": 30}}}}
FAILING_LARGE = {"fail_with": "server_error", "fail_models": ["sim-large"]}


async def open_large_breaker(stubs: Stubs) -> list[event_pb2.RunEvent]:
    """Two failing sim-large calls (two runs); returns the second run's events."""
    await create_workflow(
        stubs,
        "large-fails",
        {"steps": [llm("ask", model="sim-large", prompt="Hello", options=FAILING_LARGE)]},
    )
    first, events = await run_to_end(stubs, "large-fails")
    assert first.state == R.RUN_STATE_FAILED
    assert step_of(first, "ask").failure.type == "provider.server_error"
    assert not of_type(events, E.RUN_EVENT_TYPE_CIRCUIT_OPENED)
    second, events = await run_to_end(stubs, "large-fails")
    assert second.state == R.RUN_STATE_FAILED
    return events


async def test_failures_open_a_model_breaker_and_fallbacks_answer(db_path: str) -> None:
    clock = ManualClock()
    async with serving(db_path, policy=policy(BREAKER_POLICY), clock=clock) as (_, stubs):
        events = await open_large_breaker(stubs)
        opened = of_type(events, E.RUN_EVENT_TYPE_CIRCUIT_OPENED)
        assert [e.breaker for e in opened] == [LARGE]
        assert "server_error" in opened[0].message
        board = breakers_by_name(await stubs.control.ListBreakers(C.ListBreakersRequest()))
        assert board[LARGE].state == C.BREAKER_STATE_OPEN
        assert board[LARGE].failures == 2
        assert "server_error" in board[LARGE].cause
        assert seconds(board[LARGE].half_open_time) == at(T0 + 30)
        # The provider's own breaker (default threshold 5) stays closed.
        assert board["provider:simulated"].state == C.BREAKER_STATE_CLOSED

        # sim-large would answer now (no fault): an answer from sim-small
        # proves the open breaker kept the call from it.
        fallback = llm(
            "ask",
            model="sim-large",
            prompt="Hello",
            fallbacks=[{"provider": "simulated", "model": "sim-small"}],
        )
        await create_workflow(stubs, "large-or-small", {"steps": [fallback]})
        run, events = await run_to_end(stubs, "large-or-small")
        assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
        assert [(e.provider, e.model) for e in of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)] == [
            ("simulated", "sim-small")
        ]
        assert plain(step_of(run, "ask").output)["model"] == "sim-small"

        # Without a fallback, failFast fails at once.
        fast = {**llm("ask", model="sim-large", prompt="Hello"), "failFast": True}
        await create_workflow(stubs, "large-fast", {"steps": [fast]})
        run, events = await run_to_end(stubs, "large-fast")
        assert run.state == R.RUN_STATE_FAILED
        failed = step_of(run, "ask")
        assert failed.failure.type == "podium.CircuitOpen"
        assert LARGE in failed.failure.message
        assert len(failed.attempts) == 1
        assert not of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)
        board = breakers_by_name(await stubs.control.ListBreakers(C.ListBreakersRequest()))
        assert board[LARGE].state == C.BREAKER_STATE_OPEN
        assert clock.now() == T0  # all of it within the cooldown


async def test_a_step_waits_for_an_open_breaker_and_its_probe_closes_it(db_path: str) -> None:
    clock = ManualClock()
    async with serving(db_path, policy=policy(BREAKER_POLICY), clock=clock) as (_, stubs):
        await open_large_breaker(stubs)
        await create_workflow(
            stubs, "large-waits", {"steps": [llm("ask", model="sim-large", prompt="Hello")]}
        )
        run = await start_run(stubs, "large-waits")
        reason = f"breaker:{LARGE}"
        events = await wait_event(stubs, run.name, E.RUN_EVENT_TYPE_STEP_WAITING, reason)
        assert not of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)
        view = await get_run(stubs, run.name)
        assert step_of(view, "ask").state == R.STEP_STATE_WAITING
        assert step_of(view, "ask").reason == reason
        await sleepers(clock)
        clock.advance(29.0)
        await asyncio.sleep(0.1)
        assert not of_type(await events_so_far(stubs, run.name), E.RUN_EVENT_TYPE_LLM_CALL)
        clock.advance(1.0)  # the cooldown ends: the waiting step is the probe
        final, events = await finish(stubs, run.name)
        board = breakers_by_name(await stubs.control.ListBreakers(C.ListBreakersRequest()))

    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    assert len(step_of(final, "ask").attempts) == 1
    calls = of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)
    assert [(e.model, seconds(e.time)) for e in calls] == [("sim-large", at(T0 + 30))]
    closed = of_type(events, E.RUN_EVENT_TYPE_CIRCUIT_CLOSED)
    assert [e.breaker for e in closed] == [LARGE]
    assert seconds(closed[0].time) == at(T0 + 30)
    assert board[LARGE].state == C.BREAKER_STATE_CLOSED
    assert board[LARGE].failures == 0


async def probe_after_cooldown(db_path: str) -> tuple[run_pb2.Run, list[event_pb2.RunEvent]]:
    """Opens the sim-large breaker, lets its cooldown pass, then runs a
    healthy sim-large step (the probe)."""
    clock = ManualClock()
    async with serving(db_path, policy=policy(BREAKER_POLICY), clock=clock) as (_, stubs):
        await open_large_breaker(stubs)
        clock.advance(30.0)
        await create_workflow(
            stubs, "large-probe", {"steps": [llm("ask", model="sim-large", prompt="Hello")]}
        )
        run, events = await run_to_end(stubs, "large-probe")
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    assert [e.model for e in of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)] == ["sim-large"]
    return run, events


async def test_the_probe_is_announced_by_circuit_half_open(db_path: str) -> None:
    _, events = await probe_after_cooldown(db_path)
    circuit = [
        (E.RunEventType.Name(e.type), e.breaker)
        for e in events
        if e.type in (E.RUN_EVENT_TYPE_CIRCUIT_HALF_OPEN, E.RUN_EVENT_TYPE_CIRCUIT_CLOSED)
    ]
    assert circuit == [
        ("RUN_EVENT_TYPE_CIRCUIT_HALF_OPEN", LARGE),
        ("RUN_EVENT_TYPE_CIRCUIT_CLOSED", LARGE),
    ]


async def test_circuit_closed_says_why_it_closed(db_path: str) -> None:
    _, events = await probe_after_cooldown(db_path)
    [closed] = of_type(events, E.RUN_EVENT_TYPE_CIRCUIT_CLOSED)
    assert closed.breaker == LARGE
    assert closed.message
    assert "server_error" not in closed.message, closed.message


async def test_a_half_open_provider_breaker_is_not_stuck_by_an_open_model(db_path: str) -> None:
    clock = ManualClock()
    rules = policy(
        {
            "breakers": {
                "overrides": {
                    "provider:simulated": {"failure_threshold": 2, "cooldown": 10},
                    LARGE: {"failure_threshold": 2, "cooldown": 30},
                }
            }
        }
    )
    async with serving(db_path, policy=rules, clock=clock) as (_, stubs):
        events = await open_large_breaker(stubs)
        opened = {e.breaker for e in of_type(events, E.RUN_EVENT_TYPE_CIRCUIT_OPENED)}
        assert opened == {"provider:simulated", LARGE}
        clock.advance(10.0)  # the provider's cooldown ends, the model's does not

        fallback = {
            **llm(
                "ask",
                model="sim-large",
                prompt="Hello",
                fallbacks=[{"provider": "simulated", "model": "sim-small"}],
            ),
            "failFast": True,
        }
        await create_workflow(stubs, "large-or-small", {"steps": [fallback]})
        first, _ = await run_to_end(stubs, "large-or-small")

        clock.advance(3600.0)  # long after every cooldown
        plain_small = {**llm("ask", prompt="Hello"), "failFast": True}
        await create_workflow(stubs, "small", {"steps": [plain_small]})
        later, _ = await run_to_end(stubs, "small")
        board = breakers_by_name(await stubs.control.ListBreakers(C.ListBreakersRequest()))

    # sim-small is healthy and the provider is half-open with no probe in
    # flight: the fallback is the provider's probe, and succeeds.
    assert later.state == R.RUN_STATE_SUCCEEDED, later.steps[0].failure
    assert first.state == R.RUN_STATE_SUCCEEDED, first.steps[0].failure
    assert board["provider:simulated"].state == C.BREAKER_STATE_CLOSED


async def test_a_bad_request_is_neither_retried_nor_a_breaker_failure(db_path: str) -> None:
    # A threshold of 1 everywhere: one counted failure would open a breaker.
    rules = policy({"breakers": {"defaults": {"failure_threshold": 1}}})
    step = llm("ask", model="nope", prompt="Hello")
    step["retry"] = [{"errorEquals": ["podium.All"], "interval": "0.01s", "maxAttempts": 3}]
    async with serving(db_path, policy=rules) as (_, stubs):
        await create_workflow(stubs, "bad-model", {"steps": [step]})
        run, events = await run_to_end(stubs, "bad-model")
        board = breakers_by_name(await stubs.control.ListBreakers(C.ListBreakersRequest()))

    assert run.state == R.RUN_STATE_FAILED
    failed = step_of(run, "ask")
    assert failed.failure.type == "provider.bad_request"
    assert not failed.failure.retryable
    assert len(failed.attempts) == 1
    assert not of_type(events, E.RUN_EVENT_TYPE_STEP_RETRYING)
    assert not of_type(events, E.RUN_EVENT_TYPE_CIRCUIT_OPENED)
    used = {name for name, breaker in board.items() if breaker.calls}
    assert used == {"provider:simulated", "model:simulated/nope", "agent:llm"}
    for name in used:
        breaker = board[name]
        assert breaker.state == C.BREAKER_STATE_CLOSED, breaker
        assert breaker.failures == 0, breaker
        assert breaker.calls == 1, breaker  # counted, as a success


# -- budgets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_failure", "run_state"),
    [
        ("FAILURE_POLICY_FAIL", R.RUN_STATE_FAILED),
        ("FAILURE_POLICY_CONTINUE", R.RUN_STATE_PARTIALLY_SUCCEEDED),
    ],
)
async def test_a_run_over_its_max_cost_fails_the_call_once_and_calls_nothing(
    db_path: str, on_failure: str, run_state: run_pb2.RunState.ValueType
) -> None:
    step = llm("ask", prompt="Summarize the quarterly report", max_tokens=16)
    step["retry"] = [{"errorEquals": ["podium.All"], "interval": "0.01s", "maxAttempts": 3}]
    step["onFailure"] = on_failure
    spec = {"steps": [step, {"id": "other", "agent": "echo"}]}
    tiny = usd(Decimal("0.00001"))
    async with serving(db_path) as (_, stubs):
        await create_workflow(stubs, "capped", spec)
        run, events = await run_to_end(stubs, "capped", max_cost=tiny)

    assert run.max_cost == tiny
    assert run.state == run_state
    failed = step_of(run, "ask")
    assert failed.state == R.STEP_STATE_FAILED
    assert failed.failure.type == "podium.BudgetExceeded"
    assert not failed.failure.retryable
    assert len(failed.attempts) == 1
    assert not of_type(events, E.RUN_EVENT_TYPE_STEP_RETRYING)
    assert not of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)
    assert money_nanos(run.cost) == 0


async def test_a_server_budget_holds_under_concurrent_calls(db_path: str) -> None:
    prompt = "Summarize the quarterly report"
    cost = small_cost(prompt, 5)
    limit = 3 * cost  # room for exactly three calls
    rules = policy(
        {"budgets": [{"name": "cap", "scope": "server", "limit": str(limit), "warn_fraction": 0.5}]}
    )
    steps = [
        {**llm(f"s{i}", prompt=prompt, max_tokens=5), "onFailure": "FAILURE_POLICY_CONTINUE"}
        for i in range(10)
    ]
    async with serving(db_path, policy=rules) as (_, stubs):
        await create_workflow(stubs, "ten", {"steps": steps})
        run, events = await run_to_end(stubs, "ten")
        budgets = (await stubs.control.ListBudgets(C.ListBudgetsRequest())).budgets

    assert run.state == R.RUN_STATE_PARTIALLY_SUCCEEDED
    calls = of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)
    assert {money_nanos(e.cost) for e in calls} == {nanos_of(cost)}
    succeeded = [s for s in run.steps if s.state == R.STEP_STATE_SUCCEEDED]
    failed = [s for s in run.steps if s.state == R.STEP_STATE_FAILED]
    assert len(succeeded) == len(calls) == 3
    assert {s.failure.type for s in failed} == {"podium.BudgetExceeded"}
    assert len(failed) == 7
    assert all(len(s.attempts) == 1 for s in run.steps)
    assert len(calls) * nanos_of(cost) <= nanos_of(limit)

    [cap] = budgets
    assert cap.name == "cap"
    assert money_nanos(cap.spent) == 3 * nanos_of(cost) == money_nanos(run.cost)
    assert money_nanos(cap.reserved) == 0
    assert money_nanos(cap.spent) + money_nanos(cap.reserved) <= money_nanos(cap.limit)

    # 1/3 of the limit is below the 0.5 warning, 2/3 is past it: one warning.
    warnings = of_type(events, E.RUN_EVENT_TYPE_BUDGET_WARNING)
    assert [(e.budget, money_nanos(e.cost)) for e in warnings] == [("cap", 2 * nanos_of(cost))]
    assert events.index(warnings[0]) > events.index(calls[1])


# -- spend -------------------------------------------------------------------------------


async def test_spend_is_the_sum_of_the_recorded_calls(db_path: str) -> None:
    spec = {
        "steps": [
            {
                "id": "draft",
                "agent": "llm",
                "input": {"q": "input.q"},
                "config": {"prompt": "Answer briefly: {{ input.q }}", "max_tokens": 64},
            },
            {
                "id": "polish",
                "agent": "llm",
                "dependsOn": ["draft"],
                "input": {"prompt": "'Polish: ' + steps.draft.output.text"},
                "config": {"model": "sim-large"},
            },
            {
                "id": "each",
                "agent": "llm",
                "forEach": {"items": "input.items"},
                "input": {"prompt": "item"},
                "config": {"max_tokens": 32},
            },
        ]
    }
    async with serving(db_path) as (_, stubs):
        await create_workflow(stubs, "spend", spec)
        runs = []
        calls: list[event_pb2.RunEvent] = []
        for n, question in enumerate(["Why is the sky blue?", "What is a monad?"]):
            items = [f"item {i} of run {n}" for i in range(n + 2)]
            run, events = await run_to_end(stubs, "spend", {"q": question, "items": items})
            assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
            runs.append(run)
            calls += of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)
        server = await stubs.control.GetSpend(C.GetSpendRequest(scope_kind=C.SCOPE_KIND_SERVER))
        large = await stubs.control.GetSpend(
            C.GetSpendRequest(scope_kind=C.SCOPE_KIND_MODEL, scope_value="simulated/sim-large")
        )

    assert len(calls) == 2 * 2 + 2 + 3
    assert all(money_nanos(e.cost) > 0 for e in calls)
    total = sum(money_nanos(e.cost) for e in calls)
    assert money_nanos(server.total) == total
    assert server.total.currency_code == "USD"
    assert sum(money_nanos(r.cost) for r in runs) == total
    # One entry per UTC day (a run may straddle midnight), all of the server scope.
    assert {e.scope.kind for e in server.entries} == {C.SCOPE_KIND_SERVER}
    assert sum(e.calls for e in server.entries) == len(calls)
    large_calls = [e for e in calls if e.model == "sim-large"]
    assert len(large_calls) == 2
    assert money_nanos(large.total) == sum(money_nanos(e.cost) for e in large_calls)
