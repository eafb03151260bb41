"""Workers in tests: `podium worker` as a process of its own (kill -9, a
server restart under it), and waiting until the server sees a worker."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from podium.testing.process import CLI, ChildProcess
from podium.testing.stubs import Stubs
from podium.testing.waiting import HANG_TIMEOUT, eventually
from podium.v1 import control_service_pb2

__all__ = ["WorkerProcess", "start_worker_process", "worker_sessions", "workers_serve"]


class WorkerProcess(ChildProcess):
    """A running `podium worker`; `stop()` (SIGTERM) or `kill()` (SIGKILL)."""


def start_worker_process(
    address: str,
    *,
    log_dir: str | Path,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> WorkerProcess:
    """Starts `podium worker --address ADDRESS ARGS...` (`args`: --queue,
    --concurrency, --agent); it connects on its own, see `workers_serve`."""
    handle, name = tempfile.mkstemp(prefix="podium-worker-", suffix=".log", dir=log_dir)
    with os.fdopen(handle, "wb") as log:
        process = subprocess.Popen(
            [*CLI, "worker", "--address", address, *args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return WorkerProcess(process, Path(name))


async def worker_sessions(stubs: Stubs, agent: str, queue: str = "default") -> int:
    """How many worker sessions serve `agent` on `queue` now (ListAgents)."""
    response = await stubs.control.ListAgents(control_service_pb2.ListAgentsRequest())
    for info in response.agents:
        if info.name == agent:
            return sum(w.sessions for w in info.workers if w.queue == queue)
    return 0


async def workers_serve(
    stubs: Stubs,
    agent: str,
    *,
    sessions: int = 1,
    queue: str = "default",
    timeout: float = HANG_TIMEOUT,
) -> None:
    """Waits until `sessions` worker sessions serve `agent` on `queue`."""

    async def enough() -> bool:
        return await worker_sessions(stubs, agent, queue) == sessions

    await eventually(enough, timeout=timeout, what=f"{sessions} worker(s) serving {agent}")
