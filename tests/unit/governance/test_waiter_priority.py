"""Quota and budget waiters are served by their run's priority with aging, as execution
slots are (podium.core.priority): higher priority first, FIFO within a priority, and a
waiter overtaken only by calls that arrived within AGING_SECONDS x (their priority - its
priority) after it, so none starves. Properties checked on a ManualClock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from podium.core.clock import ManualClock
from podium.core.priority import AGING_SECONDS
from podium.governance.budgets import Budget, BudgetBusy, BudgetLedger, Reservation
from podium.governance.gate import Caller, LlmGate, NullObserver
from podium.governance.policy import Policy
from podium.governance.prices import contribute_provider_prices
from podium.governance.quotas import Admission, QuotaBook, RateLimit
from podium.governance.scopes import CallScopes, Scope
from podium.governance.service import Governance
from podium.plugins.api import CompletionRequest, Message
from podium.plugins.builtin.simulated_provider import SimulatedProvider

CALL = CallScopes(provider="openai", model="gpt-4o", agent="llm", workflow="wf")
OPENAI = Scope("provider", "openai")
# Seconds between admissions: a bucket of one request refilling every SPACING seconds.
SPACING = 4.0
TICK = 0.5


@dataclass
class Waiter:
    index: int
    priority: int
    arrived: float
    # Order of events: when it began to wait, when it was admitted.
    started: int = -1
    admitted: int = -1

    @property
    def key(self) -> float:
        return self.arrived / AGING_SECONDS - self.priority


arrivals = st.lists(
    st.tuples(st.integers(0, 16).map(lambda ticks: ticks * TICK), st.integers(0, 3)),
    min_size=2,
    max_size=14,
)


def check(waiters: list[Waiter]) -> None:
    """The three properties, from the order of events."""
    assert all(w.admitted >= 0 for w in waiters), "a waiter was never admitted"
    for a in waiters:
        for b in waiters:
            if a is b or a.admitted > b.admitted:
                continue
            # `a` went before `b`: if `b` was already waiting then, `a` had the better place.
            if b.started < a.admitted:
                assert (a.key, a.started) < (b.key, b.started), (a, b)
                # FIFO within a priority.
                if a.priority == b.priority:
                    assert a.started < b.started, (a, b)
                # No starvation: only a later call of a higher priority, arrived within its
                # aging allowance, overtakes.
                if a.started > b.started:
                    assert a.priority > b.priority
                    assert a.arrived - b.arrived < AGING_SECONDS * (a.priority - b.priority)


def quota_scenario(plan: list[tuple[float, int]]) -> list[Waiter]:
    async def scenario() -> list[Waiter]:
        clock = ManualClock(start=1000.0)
        limit = RateLimit("rpm", OPENAI, "requests", 1, 1, window=SPACING)
        quotas = QuotaBook([limit], [], clock)
        # The bucket starts empty: every call waits its turn.
        first = quotas.try_admit(quotas.plan(CALL, 1, 1))
        assert isinstance(first, Admission)
        events = iter(range(1_000_000))
        waiters: list[Waiter] = []

        async def call(waiter: Waiter) -> None:
            waiter.started = next(events)
            admission = await quotas.admit(quotas.plan(CALL, 1, 1), None, priority=waiter.priority)
            waiter.admitted = next(events)
            quotas.settle(admission, 1, 1)
            quotas.release(admission)

        tasks = []
        for index, (gap, priority) in enumerate(plan):
            await advance(clock, gap)
            waiter = Waiter(index, priority, clock.monotonic())
            waiters.append(waiter)
            tasks.append(asyncio.create_task(call(waiter)))
            await settle_loop()
        for _ in range(int(len(plan) * SPACING / TICK) + 10):
            if all(task.done() for task in tasks):
                break
            await advance(clock, TICK)
        return waiters

    return asyncio.run(scenario())


async def settle_loop() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def advance(clock: ManualClock, seconds: float) -> None:
    """Moves time in ticks, letting the waiters act at each."""
    while seconds > 0:
        step = min(TICK, seconds)
        clock.advance(step)
        seconds -= step
        await settle_loop()


@settings(max_examples=80, deadline=None)
@given(plan=arrivals)
def test_quota_waiters_go_by_priority_with_aging(plan: list[tuple[float, int]]) -> None:
    check(quota_scenario(plan))


def budget_scenario(plan: list[tuple[float, int]]) -> list[Waiter]:
    async def scenario() -> list[Waiter]:
        clock = ManualClock(start=1000.0)
        ledger = BudgetLedger([Budget("cap", "server", "", Decimal(1))], clock)
        # Room for one call at a time: a call in flight holds it.
        held: list[Reservation] = [ledger.reserve(CALL, "r0", None, Decimal(1))]
        events = iter(range(1_000_000))
        waiters: list[Waiter] = []

        async def call(waiter: Waiter) -> None:
            # What the gate does (LlmGate._reserve): a place, then reserve or wait in line.
            waiter.started = next(events)
            ticket = ledger.ticket(waiter.priority)
            try:
                while True:
                    try:
                        reservation = ledger.reserve(
                            CALL, f"r{waiter.index}", None, Decimal(1), ticket
                        )
                        break
                    except BudgetBusy as busy:
                        ledger.enqueue(ticket, busy.key)
                    await ledger.wait_for_room()
            finally:
                if ticket.keys:
                    ledger.dequeue(ticket)
            waiter.admitted = next(events)
            held.append(reservation)

        async def free_room() -> None:
            # The call in flight settles every SPACING seconds, at no cost.
            while True:
                await clock.sleep(SPACING)
                if held:
                    ledger.settle(held.pop(0), Decimal(0))

        freeing = asyncio.create_task(free_room())
        tasks = []
        for index, (gap, priority) in enumerate(plan):
            await advance(clock, gap)
            waiter = Waiter(index, priority, clock.monotonic())
            waiters.append(waiter)
            tasks.append(asyncio.create_task(call(waiter)))
            await settle_loop()
        for _ in range(int(len(plan) * SPACING / TICK) + 10):
            if all(task.done() for task in tasks):
                break
            await advance(clock, TICK)
        freeing.cancel()
        return waiters

    return asyncio.run(scenario())


@settings(max_examples=80, deadline=None)
@given(plan=arrivals)
def test_budget_waiters_go_by_priority_with_aging(plan: list[tuple[float, int]]) -> None:
    check(budget_scenario(plan))


def test_a_low_priority_waiter_is_overtaken_only_within_its_aging_allowance() -> None:
    # A priority-0 call waits; priority-2 calls keep arriving every 2 s. Those arriving
    # within 2 x AGING_SECONDS of it go first, none after: it is not starved.
    plan = [(0.0, 0)] + [(2.0, 2)] * 14
    waiters = quota_scenario(plan)
    check(waiters)
    low = waiters[0]
    overtook = [w for w in waiters if w.admitted < low.admitted and w.started > low.started]
    assert overtook, "no higher-priority call overtook: priority had no effect"
    assert all(w.arrived - low.arrived < 2 * AGING_SECONDS for w in overtook)
    later = [w for w in waiters if w.arrived - low.arrived > 2 * AGING_SECONDS]
    assert later and all(w.admitted > low.admitted for w in later)


async def test_the_gate_gives_a_waiting_budget_to_the_higher_priority_run_first() -> None:
    clock, provider = ManualClock(), SimulatedProvider(latency_ms=0)
    governed = Governance(Policy(), clock)
    contribute_provider_prices(governed.prices, [provider])
    request = CompletionRequest(
        model="sim-small", messages=[Message("user", "hello")], max_tokens=50
    )
    worst = governed.prices.worst_case("simulated", "sim-small", 2, 50)
    governed.ledger.update([Budget("cap", "server", "", worst * Decimal("1.5"))])
    # Another call in flight holds the room: both calls below wait for it.
    in_flight = governed.ledger.reserve(CALL, "r0", None, worst)
    order: list[str] = []

    async def call(run: str, priority: int) -> None:
        who = Caller(run_id=run, workflow="wf", agent="llm", priority=priority)
        gate = LlmGate(governed, lambda _: provider, who, Order(order, run))
        await gate.complete("simulated", request)

    low = asyncio.create_task(call("low", 0))
    await settle_loop()
    high = asyncio.create_task(call("high", 5))
    await settle_loop()
    assert order == ["waiting low", "waiting high"]
    governed.ledger.release(in_flight)
    await asyncio.gather(low, high)
    assert [entry for entry in order if entry.startswith("calling")] == [
        "calling high",
        "calling low",
    ]


class Order(NullObserver):
    """A GateObserver noting who waits and who calls, in order."""

    def __init__(self, order: list[str], run: str) -> None:
        self.order, self.run = order, run

    def waiting(self, reason: str) -> None:
        self.order.append(f"waiting {self.run}")

    def calling(self, provider: str, model: str) -> None:
        self.order.append(f"calling {self.run}")
