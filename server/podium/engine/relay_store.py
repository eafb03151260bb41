"""What the task relay (podium.engine.relay) needs from storage: worker presence
per server and relayed tasks, in the database the servers of a cluster share.

A run's owner posts a task when the worker its step needs is connected to
another server; a server whose worker serves the task's queue and agent claims
it (one claim wins), runs it on the worker and writes the outcome back; the
owner reads the outcome. The owner's fencing epoch rides each task: a new owner
adopts the tasks of the runs it took over (re-stamping them with its epoch),
and an outcome stamped with another epoch than the one the reader holds is not
its to record. Liveness is the server lease (ClusterStore): a task held by a
server whose lease expired is lost, and presence rows count only for live
servers. Times are wall-clock seconds of the caller.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol

from podium.core.relay_model import (
    AdoptedTask,
    PendingTask,
    RelayCall,
    RelayStatus,
    RelayTask,
    WorkerOffer,
)

__all__ = [
    "AdoptedTask",
    "PendingTask",
    "RelayCall",
    "RelayStatus",
    "RelayStore",
    "RelayTask",
    "WorkerOffer",
]


class RelayStore(Protocol):
    @property
    def server_id(self) -> str: ...

    def held_epoch(self, run_id: str) -> int | None:
        """The fencing epoch this server holds for `run_id` (None: not its run)."""
        ...

    # -- presence ----------------------------------------------------------------

    async def set_offers(
        self, offers: Collection[WorkerOffer], declarations: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Replaces what this server's connected workers serve, with each agent's
        declaration (JSON, by agent name: every offered agent has one); durable on return."""
        ...

    async def offers_elsewhere(self, now: float) -> dict[str, list[WorkerOffer]]:
        """What the workers of the other servers serve, for those whose lease is live
        at `now`, by server id."""
        ...

    async def declarations_elsewhere(self, now: float) -> dict[str, Mapping[str, Any]]:
        """The declarations of the agents the other live servers' workers serve, by
        agent name (one of them when servers disagree)."""
        ...

    # -- the owner's side ------------------------------------------------------------

    async def post(self, task: RelayTask, now: float) -> int:
        """Writes a PENDING task owned by this server (durable on return); removes the
        tasks of earlier attempts of the same step and item (superseded). Its id."""
        ...

    async def statuses(self, task_ids: Collection[int], now: float) -> dict[int, RelayStatus]:
        """The tasks that still exist among `task_ids`, with their holder's liveness at `now`."""
        ...

    async def cancel(self, task_id: int) -> None:
        """Raises the task's cancel flag (its holder stops the worker) if this server
        still owns the task (not adopted by another); durable on return."""
        ...

    async def withdraw(self, task_id: int) -> bool:
        """Removes the task if this server owns it and no server claimed it yet;
        whether it did."""
        ...

    async def adopt(self, run_ids: Collection[str]) -> list[AdoptedTask]:
        """Re-stamps the tasks of these runs (which this server now holds) with this
        server as owner and its epoch of each run; those whose cancel flag is up are
        removed instead. The adopted tasks, by id."""
        ...

    async def forget_run(self, run_id: str) -> None:
        """Removes every task of a run (it ended) that this server owns."""
        ...

    # -- the holder's side -----------------------------------------------------------

    async def pending(self, offers: Collection[WorkerOffer], limit: int) -> list[PendingTask]:
        """PENDING tasks some of `offers` take, oldest first, at most `limit`."""
        ...

    async def claim(self, task_id: int, now: float) -> bool:
        """Takes a PENDING task for this server; False when another server took it,
        or its owner withdrew it."""
        ...

    async def cancelled(self, task_ids: Collection[int]) -> set[int]:
        """Those of `task_ids` this server holds whose cancel flag is up, or that
        were removed (the owner gave up on them)."""
        ...

    async def finish(self, task_id: int, outcome: Mapping[str, Any]) -> bool:
        """Records the outcome of a task this server holds (DONE); durable on
        return. False when the task is no longer this server's (removed)."""
        ...

    async def remove(self, task_id: int) -> None:
        """Removes a task (its holder gives up on a cancelled one)."""
        ...

    # -- governed calls: made on the holder, carried out by the owner ---------------------

    async def post_call(self, task_id: int, kind: str, request: bytes, now: float) -> int:
        """The holder asks the owner of a task it holds to carry out a call; durable on
        return; its id."""
        ...

    async def open_calls(self, task_ids: Collection[int]) -> list[RelayCall]:
        """Calls not answered yet of these tasks (this server owns them), oldest first."""
        ...

    async def answer_call(self, call_id: int, response: bytes) -> bool:
        """The owner's answer; only for a call of a task this server owns and not answered
        yet (whether it was recorded); durable on return."""
        ...

    async def call_answers(self, call_ids: Collection[int]) -> dict[int, bytes]:
        """The answers among these calls (the holder polls them)."""
        ...

    async def drop_call(self, call_id: int) -> None:
        """Removes a call (the holder read its answer, or gave up on it)."""
        ...

    async def abandon_held(self) -> int:
        """Ends every task this server id still holds from an earlier life (a
        restart) with an interrupted outcome; how many."""
        ...
