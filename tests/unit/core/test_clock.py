"""The engine's clocks (podium.core.clock): ManualClock, which tests pass to a
server (podium.testing re-exports it), moves only when advanced and wakes its
sleepers in due order; sleep_until and run_with_deadline on top of it."""

from __future__ import annotations

import asyncio

import pytest

from podium.core.clock import DeadlineExceeded, ManualClock, run_with_deadline, sleep_until
from podium.testing import HANG_TIMEOUT, eventually


async def test_a_manual_clock_moves_only_when_advanced() -> None:
    clock = ManualClock(start=100.0)
    assert clock.now() == clock.monotonic() == 100.0
    woken: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woken.append(name)

    tasks = [asyncio.ensure_future(sleeper(n, s)) for n, s in (("late", 5), ("early", 2))]
    await eventually(lambda: clock.sleepers == 2, what="both asleep")
    clock.advance(1.9)
    await asyncio.sleep(0)
    assert woken == [] and clock.sleepers == 2
    clock.advance(10)  # both due: woken in due order
    await asyncio.gather(*tasks)
    assert woken == ["early", "late"]
    assert clock.now() == 111.9 and clock.sleepers == 0


async def test_a_sleep_of_nothing_does_not_wait_for_the_clock() -> None:
    clock = ManualClock()
    await asyncio.wait_for(clock.sleep(0), HANG_TIMEOUT)
    await asyncio.wait_for(sleep_until(clock, clock.now() - 5), HANG_TIMEOUT)
    assert clock.sleepers == 0


async def test_sleep_until_an_instant() -> None:
    clock = ManualClock(start=0.0)
    task = asyncio.ensure_future(sleep_until(clock, 30.0))
    await eventually(lambda: clock.sleepers == 1, what="asleep")
    clock.advance(29)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(1)
    await task


async def test_run_with_deadline_on_the_clock() -> None:
    clock = ManualClock()
    never = asyncio.Event()
    late = asyncio.ensure_future(run_with_deadline(never.wait(), 10, clock))
    await eventually(lambda: clock.sleepers == 1, what="deadline armed")
    clock.advance(10)
    with pytest.raises(DeadlineExceeded):
        await late
    assert await run_with_deadline(asyncio.sleep(0, result="done"), 10, clock) == "done"
    assert await run_with_deadline(asyncio.sleep(0, result="unbounded"), None, clock) == (
        "unbounded"
    )
