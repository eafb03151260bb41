"""A run's pending approvals: the decisions its approval steps wait for."""

from __future__ import annotations

import asyncio

from podium.core.states import RunState
from podium.engine.run_journal import RunJournal
from podium.engine.services import StopSignal


class Approvals:
    """While any approval is pending the run is WAITING_APPROVAL; when the
    last is decided it is RUNNING again (but a server shutdown leaves it
    waiting, in the store too)."""

    __slots__ = ("_journal", "_pending", "_stop")

    def __init__(self, journal: RunJournal, stop: StopSignal) -> None:
        self._journal = journal
        self._stop = stop
        self._pending: dict[str, asyncio.Future[tuple[bool, str]]] = {}

    def decision(self, step_id: str) -> asyncio.Future[tuple[bool, str]]:
        """The future (approve, comment) a step waits for."""
        future = self._pending.get(step_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._pending[step_id] = future
            self._journal.set_run_state(RunState.WAITING_APPROVAL)
        return future

    def done(self, step_id: str) -> None:
        self._pending.pop(step_id, None)
        if self._stop.stopping:
            return
        if not self._pending and self._journal.run.state == RunState.WAITING_APPROVAL:
            self._journal.set_run_state(RunState.RUNNING)

    @property
    def any_pending(self) -> bool:
        """Whether some approval step waits (the run is WAITING_APPROVAL, unless paused)."""
        return bool(self._pending)

    def waiting(self, step_id: str) -> bool:
        future = self._pending.get(step_id)
        return future is not None and not future.done()

    def resolve(self, step_id: str, approve: bool, comment: str, actor: str = "") -> None:
        future = self._pending[step_id]
        self._journal.approval_resolved(self._journal.steps[step_id], approve, comment, actor)
        future.set_result((approve, comment))
