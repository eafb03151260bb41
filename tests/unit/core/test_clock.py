"""The engine's clocks (podium.core.clock): ManualClock, which tests pass to a
server (podium.testing re-exports it), moves only when advanced and wakes its
sleepers in due order; timers armed when made, on it and on the system
clock; sleep_until and run_until on top of them."""

from __future__ import annotations

import asyncio
import time

import pytest

from podium.core.clock import (
    DeadlineExceeded,
    ManualClock,
    SystemClock,
    run_until,
    sleep_until,
)
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


async def test_run_until_on_the_clock() -> None:
    clock = ManualClock()
    never = asyncio.Event()
    late = asyncio.ensure_future(run_until(never.wait(), clock.now() + 10, clock))
    await eventually(lambda: clock.sleepers == 1, what="deadline armed")
    clock.advance(10)
    with pytest.raises(DeadlineExceeded):
        await late
    due = clock.now() + 10
    assert await run_until(asyncio.sleep(0, result="done"), due, clock) == "done"
    assert await run_until(asyncio.sleep(0, result="unbounded"), None, clock) == "unbounded"
    assert clock.sleepers == 0  # the finished call's timer was disarmed


async def test_a_timer_is_armed_when_made_not_when_awaited() -> None:
    clock = ManualClock(start=0.0)
    timer = clock.timer(5.0)
    assert clock.sleepers == 1  # no await in between: armed by the call itself
    clock.advance(5)
    assert timer.done()
    disarmed = clock.timer(10.0)
    disarmed.cancel()
    assert clock.sleepers == 0
    clock.advance(10)
    assert disarmed.cancelled()
    past = clock.timer(clock.now())  # already due: resolved on the next turn
    assert clock.sleepers == 0
    await asyncio.wait_for(past, HANG_TIMEOUT)


async def test_run_until_counts_time_that_passes_before_its_work_first_runs() -> None:
    """The clock advanced past the deadline by the work's own first step (as
    a test's agent does when entered): the deadline is not pushed back by
    that advance. Its timer used to be armed inside a task of its own, which
    ran after the work's first step and counted from the advanced time."""
    clock = ManualClock(start=0.0)
    entered = asyncio.Event()

    async def work() -> None:
        clock.advance(15)
        entered.set()
        await asyncio.Event().wait()

    call = asyncio.ensure_future(run_until(work(), 10.0, clock))
    await asyncio.wait_for(entered.wait(), HANG_TIMEOUT)
    with pytest.raises(DeadlineExceeded):
        await asyncio.wait_for(call, HANG_TIMEOUT)
    assert clock.sleepers == 0


async def test_the_system_clocks_timer() -> None:
    clock = SystemClock()
    await asyncio.wait_for(clock.timer(time.time() - 1), HANG_TIMEOUT)
    later = clock.timer(time.time() + 3600)
    later.cancel()
    await asyncio.sleep(0)
    assert later.cancelled()
    with pytest.raises(DeadlineExceeded):
        await run_until(asyncio.Event().wait(), time.time() - 1, clock)
    assert await run_until(asyncio.sleep(0, result="done"), time.time() + 3600, clock) == "done"
