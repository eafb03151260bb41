"""Pause and resume of one run: the gate that every new start passes.

A paused run starts nothing new: no step (the executor holds the steps that
become ready), no attempt of an agent call (a fan-out item, a retry, a step
resumed after a restart wait at the gate in RunSlots). What runs already goes
on to its end, and timers (retry backoffs, waits' timeouts, the run's
deadline) keep their due times: pausing changes when work starts, never when
it is due.
"""

from __future__ import annotations

import asyncio


class PauseGate:
    """Open unless the run is paused; `passage()` waits while it is."""

    __slots__ = ("_open",)

    def __init__(self, paused: bool = False) -> None:
        self._open = asyncio.Event()
        if not paused:
            self._open.set()

    @property
    def paused(self) -> bool:
        return not self._open.is_set()

    def close(self) -> None:
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    async def passage(self) -> None:
        await self._open.wait()
