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

    def timer(self, due: float) -> asyncio.Future[None]:
        """A future resolved once now() reaches `due`, armed by this call
        (not when someone first awaits it), so that time passing meanwhile
        counts. Cancelling the future disarms it."""
        ...


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def timer(self, due: float) -> asyncio.Future[None]:
        # What asyncio.sleep does, without the task that awaiting it would
        # take to start: the loop's timer is set here and now.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        handle = loop.call_later(max(due - time.time(), 0.0), _resolve, future)
        future.add_done_callback(lambda _: handle.cancel())
        return future


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
        await self.timer(self._now + seconds)

    def timer(self, due: float) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if due <= self._now:
            # Already due: resolved on the loop's next turn, as the system
            # clock's loop timer of no delay would be.
            loop.call_soon(_resolve, future)
            return future
        self._counter += 1
        self._sleepers.append((due, self._counter, future))
        return future

    @property
    def sleepers(self) -> int:
        """How many sleeps and timers are pending (tests wait for one to be armed)."""
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


async def run_until(work: Coroutine[Any, Any, T], due: float | None, clock: Clock) -> T:
    """Runs `work`; if it is not done when `clock.now()` reaches `due`, cancels
    it (the work sees CancelledError) and raises DeadlineExceeded. None: no
    deadline.

    The deadline is an instant, not a number of seconds, and its timer is
    armed before this call first yields: time that passes before the work or
    anything else runs (a ManualClock advanced meanwhile, a busy loop) is
    counted, so the work is cut off at `due` whatever clock is used."""
    if due is None:
        return await work
    timer = clock.timer(due)
    task = asyncio.ensure_future(work)
    racers: set[asyncio.Future[Any]] = {task, timer}
    try:
        await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        timer.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise
    if task.done():
        timer.cancel()
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise DeadlineExceeded()
