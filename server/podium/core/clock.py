"""Time as the engine sees it, injectable so that tests never sleep for real."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock time in seconds since the epoch (for timestamps)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for durations)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that moves only when told to: tests advance it instead of
    sleeping, and sleepers wake in due-time order."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._counter = 0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._counter += 1
        self._sleepers.append((self._now + seconds, self._counter, future))
        await future

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending (tests wait for a timer to be armed)."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    def advance(self, seconds: float) -> None:
        """Moves time forward and wakes every sleeper now due."""
        self._now += seconds
        due = sorted(s for s in self._sleepers if s[0] <= self._now)
        self._sleepers = [s for s in self._sleepers if s[0] > self._now]
        for _, _, future in due:
            if not future.done():
                future.set_result(None)


async def sleep_until(clock: Clock, due: float) -> None:
    """Sleeps until the wall-clock instant `due` (durable timers store it)."""
    # Again while short of it: asyncio sleeps on the monotonic clock, which
    # may drift from the wall clock that `due` is on, and a timer must never
    # fire before its due time.
    while (remaining := due - clock.now()) > 0:
        await clock.sleep(remaining)


class DeadlineExceeded(Exception):
    """The awaited work did not finish before its deadline; it was cancelled."""


async def run_with_deadline(work: Coroutine[Any, Any, T], seconds: float | None, clock: Clock) -> T:
    """Runs `work`; if it is not done within `seconds` on `clock`, cancels it
    (the work sees CancelledError) and raises DeadlineExceeded."""
    if seconds is None:
        return await work
    task = asyncio.ensure_future(work)
    timer = asyncio.ensure_future(clock.sleep(max(seconds, 0.0)))
    try:
        await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        timer.cancel()
        await asyncio.gather(task, timer, return_exceptions=True)
        raise
    if task.done():
        timer.cancel()
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise DeadlineExceeded()
