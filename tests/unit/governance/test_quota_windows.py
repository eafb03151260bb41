"""Rate quotas over windows of any length, several on one scope at once, and fair waiting:
properties checked on a ManualClock."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podium.core.clock import ManualClock
from podium.governance.quotas import (
    Admission,
    QuotaBook,
    QuotaTimeout,
    RateLimit,
)
from podium.governance.scopes import CallScopes, Scope

CALL = CallScopes(provider="openai", model="gpt-4o", agent="llm", workflow="wf")
OPENAI = Scope("provider", "openai")
GPT4O = Scope("model", "openai/gpt-4o")


@settings(max_examples=150, deadline=None)
@given(
    per_second=st.integers(1, 5),
    per_minute=st.integers(5, 60),
    tokens_per_hour=st.integers(500, 5000),
    bursts=st.tuples(st.integers(1, 5), st.integers(1, 20), st.integers(200, 2000)),
    steps=st.lists(
        st.tuples(st.floats(0, 90, allow_nan=False), st.integers(1, 150), st.integers(1, 150)),
        min_size=1,
        max_size=120,
    ),
)
def test_every_window_holds_at_once(
    per_second: int,
    per_minute: int,
    tokens_per_hour: int,
    bursts: tuple[int, int, int],
    steps: list[tuple[float, int, int]],
) -> None:
    limits = [
        RateLimit("rps", OPENAI, "requests", per_second, bursts[0], window=1),
        RateLimit("rpm", OPENAI, "requests", per_minute, bursts[1], window=60),
        RateLimit("tph", GPT4O, "tokens", tokens_per_hour, bursts[2], window=3600),
    ]
    clock = ManualClock(start=0.0)
    quotas = QuotaBook(limits, [], clock)
    admitted: list[tuple[float, dict[str, float]]] = []
    for pause, input_tokens, output_tokens in steps:
        clock.advance(pause)
        demand = quotas.plan(CALL, input_tokens, output_tokens)
        outcome = quotas.try_admit(demand)
        if isinstance(outcome, Admission):
            admitted.append((clock.monotonic(), {t.limit: t.amount for t in demand.takes}))
            quotas.settle(outcome, input_tokens, output_tokens)
            quotas.release(outcome)
    # For every window-long stretch starting at an admission: at most limit + burst.
    for limit in limits:
        for start, _ in admitted:
            inside = sum(
                amounts[limit.name]
                for moment, amounts in admitted
                if start <= moment <= start + limit.window
            )
            assert inside <= limit.limit + limit.capacity + 1e-6, (limit.name, start)


@settings(max_examples=60, deadline=None)
@given(amounts=st.lists(st.integers(1, 10), min_size=2, max_size=8))
def test_waiters_are_admitted_in_arrival_order(amounts: list[int]) -> None:
    async def scenario() -> list[int]:
        clock = ManualClock(start=0.0)
        quotas = QuotaBook([RateLimit("tpm", OPENAI, "input_tokens", 10, 10, window=10)], [], clock)
        # The bucket starts empty, so every demand waits; small ones could fit sooner.
        first = quotas.try_admit(quotas.plan(CALL, 10, 0))
        assert isinstance(first, Admission)
        order: list[int] = []

        async def call(index: int, amount: int) -> None:
            admission = await quotas.admit(quotas.plan(CALL, amount, 0), None)
            order.append(index)
            quotas.settle(admission, amount, 0)
            quotas.release(admission)

        tasks = []
        for index, amount in enumerate(amounts):
            tasks.append(asyncio.create_task(call(index, amount)))
            await asyncio.sleep(0)  # arrives, finds the bucket empty, waits in line
        while not all(task.done() for task in tasks):
            clock.advance(0.25)
            for _ in range(5):
                await asyncio.sleep(0)
        return order

    assert asyncio.run(scenario()) == list(range(len(amounts)))


async def test_a_call_larger_than_a_bucket_fails_at_once_with_the_figures() -> None:
    quotas = QuotaBook(
        [RateLimit("tpd", OPENAI, "tokens", 100_000, 2_000, window=86400)],
        [],
        ManualClock(start=0.0),
    )
    with pytest.raises(QuotaTimeout) as caught:
        await quotas.admit(quotas.plan(CALL, 1_000, 4_096), None)
    assert caught.value.reason == "quota:tpd"
    assert caught.value.detail == (
        "asks 5096 tokens at once, more than its capacity of 2000 (burst; 100000 per day)"
    )


def test_provider_headers_clamp_only_minute_windows() -> None:
    clock = ManualClock(start=0.0)
    quotas = QuotaBook(
        [
            RateLimit("rpm", OPENAI, "requests", 100, window=60),
            RateLimit("rpd", OPENAI, "requests", 10_000, window=86400),
        ],
        [],
        clock,
    )
    quotas.feedback_headers(CALL, remaining_requests=3)
    available = {view.name: view.available for view in quotas.snapshot().rates}
    assert available == {"rpm": 3, "rpd": 10_000}
    assert {view.name: view.window for view in quotas.snapshot().rates} == {
        "rpm": 60,
        "rpd": 86400,
    }
