"""PrioritySlots (podium.engine.slots) on a ManualClock: priority then FIFO,
aging so that nothing starves, cancelled waiters, free capacity granted at
once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from podium.core.clock import ManualClock
from podium.engine.slots import AGING_SECONDS, PrioritySlots
from podium.testing import HANG_TIMEOUT


async def enqueue(slots: PrioritySlots, priority: int, granted: list[int]) -> asyncio.Task[None]:
    """A task that waits for a slot, notes its priority when granted, keeps it."""

    async def acquire() -> None:
        await slots.acquire(priority)
        granted.append(priority)

    task = asyncio.ensure_future(acquire())
    await asyncio.sleep(0)  # queued now
    return task


async def grant_all(slots: PrioritySlots, tasks: Sequence[asyncio.Task[None]]) -> None:
    for _ in tasks:
        slots.release()
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)


async def test_slots_go_by_priority_then_fifo() -> None:
    slots = PrioritySlots(1, ManualClock())
    await slots.acquire(0)
    granted: list[int] = []
    tasks = [await enqueue(slots, p, granted) for p in (1, 3, 2, 3, 1)]
    assert slots.waiting == 5
    await grant_all(slots, tasks)
    assert granted == [3, 3, 2, 1, 1]


async def test_fifo_within_a_priority_exactly() -> None:
    clock = ManualClock()
    slots = PrioritySlots(1, clock)
    await slots.acquire(0)
    order: list[str] = []

    async def waiter(name: str) -> None:
        await slots.acquire(4)
        order.append(name)

    tasks = []
    for name in "abcde":
        tasks.append(asyncio.ensure_future(waiter(name)))
        await asyncio.sleep(0)
        clock.advance(0.001)
    await grant_all(slots, tasks)
    assert order == list("abcde")


@pytest.mark.parametrize(
    ("periods", "expected"),
    [(3, [0, 2]), (1, [2, 0])],
    ids=["aged-past", "not-yet"],
)
async def test_a_low_priority_waiter_ages(periods: int, expected: list[int]) -> None:
    """A priority-0 waiter, then a priority-2 one `periods` aging periods later:
    the old waiter's effective priority is `periods` by then, against 2."""
    clock = ManualClock()
    slots = PrioritySlots(1, clock)
    await slots.acquire(0)
    granted: list[int] = []
    old_low = await enqueue(slots, 0, granted)
    clock.advance(periods * AGING_SECONDS)
    late_high = await enqueue(slots, 2, granted)
    await grant_all(slots, [old_low, late_high])
    assert granted == expected


async def test_nothing_starves_behind_a_stream_of_high_priority_arrivals() -> None:
    clock = ManualClock()
    slots = PrioritySlots(1, clock)
    await slots.acquire(0)
    granted: list[str] = []

    async def waiter(name: str, priority: int) -> None:
        await slots.acquire(priority)
        granted.append(name)

    tasks = [asyncio.ensure_future(waiter("low", 0))]
    await asyncio.sleep(0)
    # A priority-5 waiter arrives every second and one slot is freed per
    # second: the low waiter ages one level per AGING_SECONDS, so the arrivals
    # of the first 5 periods go before it, and it goes before every later one.
    for second in range(1, 100):
        clock.advance(1)
        tasks.append(asyncio.ensure_future(waiter(f"high{second}", 5)))
        await asyncio.sleep(0)
        slots.release()
        await asyncio.sleep(0)
        if "low" in granted:
            break
    try:
        assert granted == [f"high{s}" for s in range(1, int(5 * AGING_SECONDS))] + ["low"]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_cancelled_waiter_gives_up_its_place() -> None:
    slots = PrioritySlots(1, ManualClock())
    await slots.acquire(0)
    granted: list[int] = []
    first = await enqueue(slots, 9, granted)
    second = await enqueue(slots, 1, granted)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    slots.release()
    await second
    assert granted == [1]
    assert (slots.in_use, slots.waiting) == (1, 0)


async def test_a_slot_granted_to_a_waiter_cancelled_meanwhile_is_handed_on() -> None:
    slots = PrioritySlots(1, ManualClock())
    await slots.acquire(0)
    granted: list[int] = []
    first = await enqueue(slots, 9, granted)
    second = await enqueue(slots, 1, granted)
    slots.release()  # granted to `first` ...
    first.cancel()  # ... which is cancelled before it could run
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, HANG_TIMEOUT)
    assert granted == [1]
    assert slots.in_use == 1
    slots.release()
    assert slots.in_use == 0


async def test_free_capacity_is_granted_at_once() -> None:
    slots = PrioritySlots(3, ManualClock())
    for priority in (0, -5, 5):
        await asyncio.wait_for(slots.acquire(priority), HANG_TIMEOUT)
    assert (slots.in_use, slots.waiting) == (3, 0)
