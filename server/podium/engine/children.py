"""The engine's side of `workflow` steps (podium.engine.child_steps): starts
child runs, waits for them to end, cancels them. Kept apart from the engine,
which it reaches only through the narrow protocol below."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from podium.core.errors import PodiumError
from podium.core.model import RunRecord, RunView
from podium.core.spec import ChildWorkflowSpec
from podium.core.states import UNFINISHED_RUN_STATES
from podium.engine.ports import RunStore

log = logging.getLogger("podium.engine")

# How often a child run that is neither this server's (cluster mode: another
# server owns it) nor final yet is read again; a local child is awaited.
POLL_SECONDS = 0.5
# A parent has at most one running child per `workflow` step: far fewer than
# this many (the steps of a workflow are limited well below it).
MAX_CHILDREN = 10_000


@dataclass(frozen=True, slots=True)
class ChildLink:
    """What makes a run a child: its fixed id, its parent and its depth."""

    run_id: str
    parent_run_id: str
    parent_step_id: str
    depth: int


class _Executor(Protocol):
    @property
    def run(self) -> RunRecord: ...
    @property
    def finished(self) -> asyncio.Event: ...


class _Engine(Protocol):
    @property
    def store(self) -> RunStore: ...
    @property
    def active(self) -> Any: ...

    async def start_child(
        self,
        link: ChildLink,
        workflow_id: str,
        version: int,
        input: dict[str, Any],
        max_cost: Decimal | None,
        parent: RunRecord,
    ) -> RunView: ...

    async def cancel_run(self, run_id: str, reason: str = "") -> RunView: ...


class EngineChildren:
    """ChildRuns (podium.engine.child_steps) over an engine, bound once built."""

    def __init__(self) -> None:
        self._engine: _Engine | None = None
        self._cancelling: set[asyncio.Task[None]] = set()

    def bind(self, engine: _Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> _Engine:
        assert self._engine is not None, "EngineChildren used before bind()"
        return self._engine

    async def find(self, run_id: str) -> RunRecord | None:
        executor: _Executor | None = self.engine.active.get(run_id)
        if executor is not None:
            return executor.run
        view = await self.engine.store.get_run(run_id)
        return None if view is None else view.run

    async def start(
        self,
        run_id: str,
        parent: RunRecord,
        step_id: str,
        spec: ChildWorkflowSpec,
        input: dict[str, Any],
        room: Decimal | None,
    ) -> RunRecord:
        link = ChildLink(run_id, parent.run_id, step_id, parent.depth + 1)
        view = await self.engine.start_child(link, spec.name, spec.version, input, room, parent)
        return view.run

    async def wait(self, run_id: str) -> RunRecord:
        """The child's final record. A child not running here (not resumed
        yet after a restart, or another server's) is read until it is."""
        while True:
            executor: _Executor | None = self.engine.active.get(run_id)
            if executor is not None:
                await executor.finished.wait()
                return executor.run
            view = await self.engine.store.get_run(run_id)
            if view is None:
                raise RuntimeError(f"child run {run_id} is gone")
            if view.run.state.is_final:
                return view.run
            await asyncio.sleep(POLL_SECONDS)

    async def running_children(self, parent_run_id: str, tenant: str) -> list[RunRecord]:
        return await self.engine.store.list_runs(
            MAX_CHILDREN, states=UNFINISHED_RUN_STATES, tenant=tenant, parent_run_id=parent_run_id
        )

    def cancel(self, run_id: str, reason: str) -> None:
        """Cancels a child (its parent's step is being cancelled: this must not
        wait). In cluster mode a child owned by another server is cancelled
        through the cluster's commands, as CancelRun does."""

        async def cancel() -> None:
            try:
                await self.engine.cancel_run(run_id, reason)
            except PodiumError as error:  # ended meanwhile: nothing to cancel
                log.info("child run %s not cancelled: %s", run_id, error.message)

        task = asyncio.create_task(cancel(), name=f"cancel-child:{run_id}")
        self._cancelling.add(task)
        task.add_done_callback(self._cancelling.discard)
