"""Event-loop lag: how late a timer fires. Every RPC and every step share
one loop, so lag delays them all."""

from __future__ import annotations

import asyncio
import time

DEFAULT_INTERVAL = 0.25


class LoopLag:
    """Samples the loop every `interval`; `take()` gives the worst lag (s)
    since the previous take."""

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        self._interval = interval
        self._worst = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample(), name="podium-loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def take(self) -> float:
        worst, self._worst = self._worst, 0.0
        return worst

    async def _sample(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self._interval)
            late = time.perf_counter() - before - self._interval
            self._worst = max(self._worst, late)
