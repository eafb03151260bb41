"""Quotas: planning, all-or-nothing admission, waiting, settling, provider
feedback and runtime updates, on a ManualClock."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podium.core.clock import ManualClock
from podium.governance.quotas import (
    Admission,
    Blocked,
    ConcurrencyLimit,
    QuotaBook,
    QuotaTimeout,
    RateLimit,
    Take,
)
from podium.governance.scopes import CallScopes, Scope

CALL = CallScopes(provider="openai", model="gpt-4o", agent="llm", workflow="wf")
OPENAI = Scope("provider", "openai")
GPT4O = Scope("model", "openai/gpt-4o")


def book(*limits: RateLimit, leases: tuple[ConcurrencyLimit, ...] = ()) -> QuotaBook:
    return QuotaBook(list(limits), list(leases), ManualClock(start=1000.0))


def clock_of(quotas: QuotaBook) -> ManualClock:
    clock = quotas._clock
    assert isinstance(clock, ManualClock)
    return clock


def levels(quotas: QuotaBook) -> dict[str, float]:
    return {view.name: view.available for view in quotas.snapshot().rates}


def admitted(outcome: Admission | Blocked) -> Admission:
    assert isinstance(outcome, Admission), outcome
    return outcome


async def spin() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


# -- limits and planning ----------------------------------------------------


def test_burst_defaults_to_per_minute() -> None:
    assert RateLimit("r", OPENAI, "requests", 60).capacity == 60
    assert RateLimit("r", OPENAI, "requests", 60, burst=5).capacity == 5


@pytest.mark.parametrize(
    "make",
    [
        lambda: RateLimit("r", OPENAI, "requests", 0),
        lambda: RateLimit("r", OPENAI, "bytes", 10),  # type: ignore[arg-type]
        lambda: RateLimit("", OPENAI, "requests", 10),
        lambda: ConcurrencyLimit("c", OPENAI, 0),
        lambda: Scope("region", "eu"),  # type: ignore[arg-type]
        lambda: Scope("agent", ""),
    ],
)
def test_rejects_bad_limits(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        QuotaBook(
            [RateLimit("x", OPENAI, "requests", 1)],
            [ConcurrencyLimit("x", OPENAI, 1)],
            ManualClock(),
        )


def test_plan_amounts_per_dimension() -> None:
    quotas = book(
        RateLimit("rpm", OPENAI, "requests", 60),
        RateLimit("in", GPT4O, "input_tokens", 10_000),
        RateLimit("out", GPT4O, "output_tokens", 10_000),
        RateLimit("tok", Scope("tenant", "default"), "tokens", 10_000),
        RateLimit("other", Scope("provider", "anthropic"), "requests", 60),
        leases=(
            ConcurrencyLimit("calls", Scope("agent", "llm"), 2),
            ConcurrencyLimit("runs", Scope("workflow", "wf"), 1),
        ),
    )
    demand = quotas.plan(CALL, input_tokens=100, max_output_tokens=50)
    assert demand.takes == (
        Take("rpm", "requests", 1.0),
        Take("in", "input_tokens", 100.0),
        Take("out", "output_tokens", 50.0),
        Take("tok", "tokens", 150.0),
    )
    # A workflow concurrency limit bounds runs, not calls.
    assert demand.leases == ("calls",)
    assert quotas.plan_run("wf").leases == ("runs",)
    assert quotas.plan_run("other").leases == ()


# -- admission ----------------------------------------------------------------


def test_blocked_names_first_limit_and_longest_wait() -> None:
    quotas = book(
        RateLimit("rpm", OPENAI, "requests", 60, burst=1),
        RateLimit("tpm", GPT4O, "tokens", 600, burst=600),
    )
    admitted(quotas.try_admit(quotas.plan(CALL, 500, 100)))
    outcome = quotas.try_admit(quotas.plan(CALL, 100, 20))
    assert isinstance(outcome, Blocked)
    assert outcome.reason == "quota:rpm"
    assert outcome.retry_in == pytest.approx(12.0)  # 120 tokens at 10 a second


def test_blocked_by_lease_has_no_retry_time() -> None:
    quotas = book(
        RateLimit("rpm", OPENAI, "requests", 60, burst=1),
        leases=(ConcurrencyLimit("one", OPENAI, 1),),
    )
    first = admitted(quotas.try_admit(quotas.plan(CALL, 1, 1)))
    outcome = quotas.try_admit(quotas.plan(CALL, 1, 1))
    assert outcome == Blocked("quota:rpm", None)
    quotas.release(first)
    quotas.release(first)  # exactly once: the second release frees nothing more
    assert quotas.snapshot().leases[0].in_use == 0


def test_demand_over_capacity_never_fits() -> None:
    quotas = book(RateLimit("tpm", OPENAI, "tokens", 1000))
    outcome = quotas.try_admit(quotas.plan(CALL, 900, 200))
    assert outcome == Blocked("quota:tpm", math.inf)


async def test_admit_over_capacity_fails_at_once() -> None:
    quotas = book(RateLimit("tpm", OPENAI, "tokens", 1000))
    with pytest.raises(QuotaTimeout) as raised:
        await quotas.admit(quotas.plan(CALL, 900, 200), deadline=None)
    assert raised.value.reason == "quota:tpm"


async def test_admit_waits_for_refill_and_reports_once() -> None:
    quotas = book(RateLimit("rpm", OPENAI, "requests", 60, burst=1))
    clock = clock_of(quotas)
    admitted(quotas.try_admit(quotas.plan(CALL, 1, 1)))
    waits: list[str] = []
    task = asyncio.ensure_future(quotas.admit(quotas.plan(CALL, 1, 1), None, waits.append))
    await spin()
    assert waits == ["quota:rpm"] and clock.sleepers == 1 and not task.done()
    clock.advance(1.0)
    await spin()
    assert isinstance(task.result(), Admission)
    assert waits == ["quota:rpm"]


async def test_admit_times_out_when_the_wait_would_pass_the_deadline() -> None:
    quotas = book(RateLimit("rpm", OPENAI, "requests", 60, burst=1))
    clock = clock_of(quotas)
    admitted(quotas.try_admit(quotas.plan(CALL, 1, 1)))
    before = levels(quotas)
    with pytest.raises(QuotaTimeout, match="quota:rpm"):
        await quotas.admit(quotas.plan(CALL, 1, 1), deadline=clock.monotonic() + 0.5)
    assert levels(quotas) == before


async def test_admit_waits_for_a_lease_release() -> None:
    quotas = book(leases=(ConcurrencyLimit("one", GPT4O, 1),))
    first = admitted(quotas.try_admit(quotas.plan(CALL, 1, 1)))
    waits: list[str] = []
    task = asyncio.ensure_future(quotas.admit(quotas.plan(CALL, 1, 1), None, waits.append))
    await spin()
    assert waits == ["quota:one"] and not task.done()
    quotas.release(first)
    await spin()
    second = task.result()
    assert quotas.snapshot().leases[0].in_use == 1
    quotas.release(second)
    assert quotas.snapshot().leases[0].in_use == 0


async def test_lease_wait_ends_at_the_deadline() -> None:
    quotas = book(leases=(ConcurrencyLimit("one", GPT4O, 1),))
    clock = clock_of(quotas)
    admitted(quotas.try_admit(quotas.plan(CALL, 1, 1)))
    task = asyncio.ensure_future(quotas.admit(quotas.plan(CALL, 1, 1), clock.monotonic() + 5))
    await spin()
    clock.advance(5.0)
    await spin()
    with pytest.raises(QuotaTimeout, match="quota:one"):
        task.result()
    assert quotas._lease_waiters == []


async def test_cancelled_admit_leaves_nothing_behind() -> None:
    quotas = book(leases=(ConcurrencyLimit("one", GPT4O, 1),))
    clock = clock_of(quotas)
    admitted(quotas.try_admit(quotas.plan(CALL, 1, 1)))
    task = asyncio.ensure_future(quotas.admit(quotas.plan(CALL, 1, 1), clock.monotonic() + 5))
    await spin()
    task.cancel()
    await spin()
    assert task.cancelled()
    assert quotas._lease_waiters == [] and clock.sleepers == 0
    assert quotas.snapshot().leases[0].in_use == 1


# -- settling -----------------------------------------------------------------


def test_settle_refunds_unused_tokens_once() -> None:
    quotas = book(
        RateLimit("tpm", OPENAI, "tokens", 6000),
        RateLimit("out", OPENAI, "output_tokens", 6000),
        RateLimit("rpm", OPENAI, "requests", 60),
    )
    admission = admitted(quotas.try_admit(quotas.plan(CALL, 1000, 2000)))
    assert levels(quotas) == {"tpm": 3000, "out": 4000, "rpm": 59}
    quotas.settle(admission, actual_input=1000, actual_output=500)
    assert levels(quotas) == {"tpm": 4500, "out": 5500, "rpm": 59}
    quotas.settle(admission, actual_input=0, actual_output=0)
    assert levels(quotas) == {"tpm": 4500, "out": 5500, "rpm": 59}


def test_settle_debits_an_overrun() -> None:
    quotas = book(RateLimit("in", OPENAI, "input_tokens", 6000))
    admission = admitted(quotas.try_admit(quotas.plan(CALL, 1000, 10)))
    quotas.settle(admission, actual_input=1500, actual_output=10)
    assert levels(quotas) == {"in": 4500}


# -- provider feedback ----------------------------------------------------------


def test_rate_limited_pauses_provider_and_model_request_buckets() -> None:
    quotas = book(
        RateLimit("rpm", OPENAI, "requests", 600),
        RateLimit("model-rpm", GPT4O, "requests", 600),
        RateLimit("tpm", OPENAI, "tokens", 100_000),
    )
    clock = clock_of(quotas)
    quotas.feedback_rate_limited(CALL, retry_after=20.0)
    outcome = quotas.try_admit(quotas.plan(CALL, 10, 10))
    assert isinstance(outcome, Blocked)
    assert outcome.reason == "quota:rpm" and outcome.retry_in == pytest.approx(20.0)
    views = {view.name: view for view in quotas.snapshot().rates}
    assert views["rpm"].paused_until == clock.now() + 20.0
    assert views["tpm"].paused_until is None
    clock.advance(20.0)
    admitted(quotas.try_admit(quotas.plan(CALL, 10, 10)))


def test_rate_limited_pauses_even_without_limits() -> None:
    quotas = book()
    clock = clock_of(quotas)
    quotas.feedback_rate_limited(CALL, retry_after=3.0)
    outcome = quotas.try_admit(quotas.plan(CALL, 10, 10))
    assert isinstance(outcome, Blocked)
    assert outcome.reason == "quota:provider:openai"
    assert outcome.retry_in == pytest.approx(3.0)
    other = CallScopes("anthropic", "claude", "llm", "wf")
    admitted(quotas.try_admit(quotas.plan(other, 10, 10)))
    assert [str(scope) for scope, _ in quotas.snapshot().pauses] == [
        "provider:openai",
        "model:openai/gpt-4o",
    ]
    clock.advance(3.0)
    admitted(quotas.try_admit(quotas.plan(CALL, 10, 10)))
    assert quotas.snapshot().pauses == ()


def test_headers_clamp_never_raise() -> None:
    quotas = book(
        RateLimit("rpm", OPENAI, "requests", 600),
        RateLimit("tpm", GPT4O, "tokens", 100_000),
        RateLimit("agent-rpm", Scope("agent", "llm"), "requests", 600),
    )
    quotas.feedback_headers(CALL, remaining_requests=5, remaining_tokens=2000)
    assert levels(quotas) == {"rpm": 5, "tpm": 2000, "agent-rpm": 600}
    quotas.feedback_headers(CALL, remaining_requests=500)
    assert levels(quotas)["rpm"] == 5


# -- runtime updates --------------------------------------------------------------


def test_update_keeps_levels_and_holders() -> None:
    quotas = book(
        RateLimit("rpm", OPENAI, "requests", 60),
        RateLimit("tpm", OPENAI, "tokens", 1000),
        leases=(ConcurrencyLimit("one", OPENAI, 1),),
    )
    held = admitted(quotas.try_admit(quotas.plan(CALL, 100, 100)))
    quotas.update(
        [
            RateLimit("rpm", OPENAI, "requests", 60),  # unchanged
            RateLimit("tpm", OPENAI, "tokens", 2000, burst=100),  # smaller burst
            RateLimit("new", GPT4O, "requests", 10),
        ],
        [ConcurrencyLimit("one", OPENAI, 2)],
    )
    assert levels(quotas) == {"rpm": 59, "tpm": 100, "new": 10}
    assert quotas.snapshot().leases[0].in_use == 1
    quotas.release(held)
    assert quotas.snapshot().leases[0].in_use == 0


async def test_update_wakes_lease_waiters() -> None:
    quotas = book(leases=(ConcurrencyLimit("one", OPENAI, 1),))
    admitted(quotas.try_admit(quotas.plan(CALL, 1, 1)))
    task = asyncio.ensure_future(quotas.admit(quotas.plan(CALL, 1, 1), None))
    await spin()
    quotas.update([], [ConcurrencyLimit("one", OPENAI, 2)])
    await spin()
    assert isinstance(task.result(), Admission)


def test_settle_and_release_after_the_limit_was_removed() -> None:
    quotas = book(
        RateLimit("tpm", OPENAI, "tokens", 1000), leases=(ConcurrencyLimit("one", OPENAI, 1),)
    )
    held = admitted(quotas.try_admit(quotas.plan(CALL, 100, 100)))
    quotas.update([], [])
    quotas.settle(held, 0, 0)
    quotas.release(held)
    assert quotas.snapshot().rates == () and quotas.snapshot().leases == ()


# -- properties ---------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    per_minute=st.integers(1, 30),
    burst=st.integers(1, 30),
    gaps=st.lists(st.floats(0.0, 20.0, allow_nan=False), min_size=1, max_size=200),
)
def test_never_more_than_rate_plus_burst_in_any_minute(
    per_minute: int, burst: int, gaps: list[float]
) -> None:
    quotas = book(RateLimit("rpm", OPENAI, "requests", per_minute, burst=burst))
    clock = clock_of(quotas)
    times: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        if isinstance(quotas.try_admit(quotas.plan(CALL, 0, 0)), Admission):
            times.append(clock.monotonic())
    for start in times:
        in_window = sum(1 for t in times if start <= t <= start + 60.0)
        assert in_window <= per_minute + burst


limit_strategy = st.tuples(
    st.sampled_from(["provider", "model", "agent"]),
    st.sampled_from(["requests", "input_tokens", "output_tokens", "tokens"]),
    st.integers(1, 5000),  # per minute
    st.integers(0, 5000),  # drained first
)


@settings(max_examples=200, deadline=None)
@given(
    specs=st.lists(limit_strategy, min_size=1, max_size=6),
    lease_free=st.booleans(),
    input_tokens=st.integers(0, 3000),
    max_output=st.integers(0, 3000),
)
def test_a_blocked_demand_takes_nothing(
    specs: list[tuple[str, str, int, int]], lease_free: bool, input_tokens: int, max_output: int
) -> None:
    scopes = {"provider": OPENAI, "model": GPT4O, "agent": Scope("agent", "llm")}
    limits = [
        RateLimit(f"l{i}", scopes[kind], dimension, per_minute)  # type: ignore[arg-type]
        for i, (kind, dimension, per_minute, _) in enumerate(specs)
    ]
    quotas = book(*limits, leases=(ConcurrencyLimit("lease", OPENAI, 1),))
    now = clock_of(quotas).monotonic()
    for limit, (_, _, per_minute, drained) in zip(limits, specs, strict=True):
        quotas._buckets[limit.name].take(min(drained, per_minute), now)
    if not lease_free:
        quotas._pools["lease"].in_use = 1
    before = quotas.snapshot()
    demand = quotas.plan(CALL, input_tokens, max_output)
    outcome = quotas.try_admit(demand)
    after = quotas.snapshot()
    if isinstance(outcome, Blocked):
        assert after == before
    else:
        taken = {take.limit: take.amount for take in demand.takes}
        for old, new in zip(before.rates, after.rates, strict=True):
            assert new.available == pytest.approx(old.available - taken[old.name])
        assert after.leases[0].in_use == 1


def test_drain_empties_every_rate_bucket_and_keeps_leases() -> None:
    quotas = book(
        RateLimit("rpm", OPENAI, "requests", 60, burst=5),
        leases=(ConcurrencyLimit("one", OPENAI, 1),),
    )
    quotas.drain()
    assert levels(quotas) == {"rpm": 0}
    assert isinstance(quotas.try_admit(quotas.plan(CALL, 1, 1)), Blocked)
    clock_of(quotas).advance(1)
    admitted(quotas.try_admit(quotas.plan(CALL, 1, 1)))


def test_a_tenant_quota_takes_only_its_tenants_calls() -> None:
    quotas = book(
        RateLimit("acme-rpm", Scope("tenant", "acme"), "requests", 60, burst=1),
        RateLimit("globex-rpm", Scope("tenant", "globex"), "requests", 60, burst=1),
    )
    acme = CallScopes("openai", "gpt-4o", "llm", "wf", tenant="acme")
    globex = CallScopes("openai", "gpt-4o", "llm", "wf", tenant="globex")
    assert [t.limit for t in quotas.plan(acme, 10, 10).takes] == ["acme-rpm"]
    admitted(quotas.try_admit(quotas.plan(acme, 10, 10)))
    # acme's bucket is empty now; globex's is untouched and admits at once.
    assert isinstance(quotas.try_admit(quotas.plan(acme, 10, 10)), Blocked)
    admitted(quotas.try_admit(quotas.plan(globex, 10, 10)))
