"""What the engine hands down to the executors of its runs: narrow services,
never itself, so a run's code cannot reach back into the engine."""

from __future__ import annotations

from dataclasses import dataclass

from podium.core.clock import Clock
from podium.engine.observer import RunObserver
from podium.engine.ports import ChildRuns, RunStore
from podium.engine.recorder import Recorder
from podium.engine.relay import TaskRelay
from podium.engine.slots import PrioritySlots
from podium.engine.streaming import DeltaSink
from podium.engine.workers import WorkerPool
from podium.governance.service import Governance
from podium.plugins.registry import Registry


@dataclass(frozen=True, slots=True)
class RunServices:
    clock: Clock
    # Reads of finished items and of the step cache; writes go through the recorder.
    store: RunStore
    recorder: Recorder
    # Agents, tools and providers.
    registry: Registry
    governance: Governance
    # Server-wide agent-call slots, granted by run priority.
    slots: PrioritySlots
    # A run's max_concurrency when neither the run nor its workflow sets one.
    default_max_concurrency: int
    # Telemetry watching runs (spans, metrics, log lines); None watches nothing.
    observer: RunObserver | None = None
    # Connected workers: agents whose execution is delegated to them.
    workers: WorkerPool | None = None
    # Cluster mode: attempts relayed to workers connected to other servers.
    relay: TaskRelay | None = None
    # Live subscribers of output deltas (streamed answers); None: nobody.
    deltas: DeltaSink | None = None
    # Starts, awaits and cancels child runs (`workflow` steps); None: no such steps.
    children: ChildRuns | None = None


class StopSignal:
    """Set when the server shuts down: running work then stops without
    recording it, so the run stays resumable after a restart."""

    __slots__ = ("stopping",)

    def __init__(self) -> None:
        self.stopping = False
