"""Records of the task relay (cluster mode): what a connected worker serves, a
relayed attempt, and what its owner and holder read of it. The port is
podium.engine.relay_store; the relay itself podium.engine.relay."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "AdoptedTask",
    "PendingTask",
    "RelayCall",
    "RelayState",
    "RelayStatus",
    "RelayTask",
    "WorkerOffer",
]


RelayState = Literal["PENDING", "CLAIMED", "DONE"]


@dataclass(frozen=True, slots=True)
class WorkerOffer:
    """A (queue, agent) a connected worker serves, for `tenant`'s runs
    (None: every tenant's)."""

    queue: str
    agent: str
    tenant: str | None = None

    def takes(self, queue: str, agent: str, tenant: str) -> bool:
        return (
            self.queue == queue
            and self.agent == agent
            and (self.tenant is None or self.tenant == tenant)
        )


@dataclass(frozen=True, slots=True)
class RelayTask:
    """One attempt the owner relays: `payload` is what the worker's task carries
    besides these fields (JSON), `epoch` the owner's fencing epoch of the run."""

    run_id: str
    step_id: str
    item: int
    attempt: int
    epoch: int
    queue: str
    agent: str
    tenant: str
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PendingTask:
    """A task not claimed yet, as a server that may run it reads it."""

    task_id: int
    owner: str
    task: RelayTask


@dataclass(frozen=True, slots=True)
class RelayStatus:
    """A task as its owner polls it. `holder_live`: whether the server holding it
    still holds a live lease (False while PENDING)."""

    task_id: int
    state: RelayState
    epoch: int
    holder: str | None
    holder_live: bool
    cancel: bool
    outcome: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class RelayCall:
    """A governed call (a model or a tool) a relayed attempt's worker made on the
    server holding it, for the run's owner to carry out: `request` and the answer
    are opaque bytes to the relay (the worker protocol's messages)."""

    call_id: int
    task_id: int
    kind: str
    request: bytes


@dataclass(frozen=True, slots=True)
class AdoptedTask:
    """A relayed attempt of a run this server took over, now stamped with its epoch."""

    task_id: int
    run_id: str
    step_id: str
    item: int
    attempt: int
