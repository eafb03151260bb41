"""Server-wide execution slots, granted by priority with aging.

When every slot is taken, waiters are served by effective priority
`priority + waited / AGING_SECONDS` (podium.core.priority, the rule quota
and budget waiters follow too): a heap of their places serves them in order.
"""

from __future__ import annotations

import asyncio
import heapq

from podium.core.clock import Clock
from podium.core.priority import AGING_SECONDS, Place, place
from podium.engine.pausing import PauseGate

__all__ = ["AGING_SECONDS", "PrioritySlots", "RunSlots"]


class PrioritySlots:
    def __init__(self, capacity: int, clock: Clock) -> None:
        self.capacity = capacity
        self.in_use = 0
        self._clock = clock
        self._waiters: list[tuple[Place, asyncio.Future[None]]] = []

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, priority: int) -> None:
        if self.in_use < self.capacity and not self._waiters:
            self.in_use += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (place(priority, self._clock.monotonic()), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted just as we were cancelled: hand it on
            raise

    def release(self) -> None:
        self.in_use -= 1
        while self._waiters and self.in_use < self.capacity:
            _, future = heapq.heappop(self._waiters)
            if not future.done():
                self.in_use += 1
                future.set_result(None)


class RunSlots:
    """A run's slots: its own limit (FIFO), then a server-wide slot (by priority)."""

    __slots__ = ("_priority", "_run", "_server", "gate", "limit")

    def __init__(
        self, limit: int, server: PrioritySlots, priority: int, gate: PauseGate | None = None
    ) -> None:
        self.limit = limit
        self._run = asyncio.Semaphore(limit)
        self._server = server
        self._priority = priority
        # Closed while the run is paused: no new agent call starts then.
        self.gate = gate or PauseGate()

    def slot(self) -> RunSlots:
        """`async with slots.slot():` holds one of the run's slots and a
        server-wide one while its body runs (an agent call). The slots are
        their own context manager (no state per use; a class rather than a
        generator-based one: it is entered once per attempt, on the event loop)."""
        return self

    async def __aenter__(self) -> None:
        while True:
            await self.gate.passage()
            await self._run.acquire()
            try:
                await self._server.acquire(self._priority)
            except BaseException:
                self._run.release()
                raise
            if not self.gate.paused:
                return
            # Paused while queueing for a slot: hand it on and wait again.
            self._server.release()
            self._run.release()

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.release()
        self._run.release()
