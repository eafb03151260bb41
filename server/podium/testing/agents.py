"""Agents for testing what happens around a step, with no timing to guess.

A test that must stop, cancel or kill a server while a step runs, or see two
steps run at once, cannot rely on a step "taking long enough" or "starting
soon enough": on a busy machine any such guess fails sooner or later. These
agents make the state the test needs certain instead:

- HoldAgent holds each step until the test releases it;
- BarrierAgent lets its steps finish only when `parties` of them run at once.

Serve them with `podium.testing.plugins.plugins_with(...)`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from podium.plugins.api import StepContext

__all__ = ["BarrierAgent", "HoldAgent"]


class HoldAgent:
    """Returns its input once the test releases its step (`release(step_id)`)
    or every step (`release()`). `held` names the steps holding now, so a test
    waits for one to run: `await eventually(lambda: "slow" in hold.held)`.
    Cancellation (CancelRun, a timeout, a server stop) ends a held step as it
    ends any agent."""

    description = "Holds its step until the test releases it (podium.testing)."
    version = "1"

    def __init__(self, name: str = "hold") -> None:
        self.name = name
        self._released: dict[str, asyncio.Event] = {}
        self._all = asyncio.Event()
        self._held: list[str] = []

    @property
    def held(self) -> list[str]:
        """Step ids holding now, in the order they started (an item of a
        fan-out appears once per item)."""
        return list(self._held)

    def release(self, step_id: str | None = None) -> None:
        """Lets `step_id` finish (now or whenever it runs); None: every step."""
        if step_id is None:
            self._all.set()
        else:
            self._event(step_id).set()

    async def run(self, ctx: StepContext) -> Any:
        self._held.append(ctx.step_id)
        try:
            released = asyncio.ensure_future(self._event(ctx.step_id).wait())
            everything = asyncio.ensure_future(self._all.wait())
            try:
                await asyncio.wait({released, everything}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                released.cancel()
                everything.cancel()
        finally:
            self._held.remove(ctx.step_id)
        return ctx.input

    def _event(self, step_id: str) -> asyncio.Event:
        return self._released.setdefault(step_id, asyncio.Event())


class BarrierAgent:
    """Returns its input once `parties` steps (or fan-out items) run it at
    the same time, in batches of `parties`: that many must be in flight
    together for any of them to finish."""

    description = "Finishes only when enough steps run it at once (podium.testing)."
    version = "1"

    def __init__(self, parties: int, name: str = "barrier") -> None:
        self.name = name
        self.parties = parties
        self._barrier = asyncio.Barrier(parties)

    async def run(self, ctx: StepContext) -> Any:
        await self._barrier.wait()
        return ctx.input
