"""Run admission: a workflow's concurrency quota (its most running runs),
and its run_concurrency (its most running runs per key of their input).

Runs beyond the limit stay PENDING and start first come first served as
earlier runs end; each admitted run holds a quota lease until it ends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from podium.governance.quotas import Admission, QuotaBook


@dataclass(slots=True)
class _Waiting:
    run_id: str
    start: Callable[[], None]
    # False once the run ended (cancelled) while it waited.
    still_waiting: Callable[[], bool]


class RunAdmission:
    def __init__(self, quotas: QuotaBook) -> None:
        self._quotas = quotas
        self._queued: dict[str, deque[_Waiting]] = {}
        self._leases: dict[str, Admission] = {}

    def start_when_admitted(
        self,
        run_id: str,
        workflow_id: str,
        start: Callable[[], None],
        still_waiting: Callable[[], bool],
    ) -> None:
        """Calls `start` now if the workflow's quota admits the run (or it
        has none), else once earlier runs have ended."""
        quotas = self._quotas
        demand = quotas.plan_run(workflow_id)
        if not demand.leases:
            start()
            return
        queue = self._queued.setdefault(workflow_id, deque())
        admitted = quotas.try_admit(demand) if not queue else None
        if not isinstance(admitted, Admission):
            queue.append(_Waiting(run_id, start, still_waiting))
            return
        self._leases[run_id] = admitted
        start()

    def run_ended(self, run_id: str, workflow_id: str) -> None:
        """Gives back the run's lease, if it held one, and starts who waited."""
        admission = self._leases.pop(run_id, None)
        if admission is None:
            return
        self._quotas.release(admission)
        queue = self._queued.get(workflow_id)
        quotas = self._quotas
        while queue:
            waiting = queue[0]
            if not waiting.still_waiting():
                queue.popleft()  # cancelled while it waited
                continue
            admitted = quotas.try_admit(quotas.plan_run(workflow_id))
            if not isinstance(admitted, Admission):
                return
            queue.popleft()
            self._leases[waiting.run_id] = admitted
            waiting.start()


class KeyedRunAdmission:
    """A workflow's run_concurrency: at most `max_runs` running runs per key
    (an expression over the run's input); runs beyond it wait, first come
    first served within their key. A run holds its place until it ends."""

    def __init__(self) -> None:
        self._running: dict[tuple[str, ...], set[str]] = {}
        self._queued: dict[tuple[str, ...], deque[_Waiting]] = {}
        self._place_of: dict[str, tuple[str, ...]] = {}
        self._max_runs: dict[tuple[str, ...], int] = {}

    def start_when_admitted(
        self,
        run_id: str,
        key: tuple[str, ...],
        max_runs: int,
        start: Callable[[], None],
        still_waiting: Callable[[], bool],
    ) -> None:
        """Calls `start` now if fewer than `max_runs` runs of `key` run (and
        none waits before it), else once enough of them have ended."""
        running = self._running.setdefault(key, set())
        queue = self._queued.setdefault(key, deque())
        self._place_of[run_id] = key
        # The latest version's limit holds for the key from now on.
        self._max_runs[key] = max_runs
        if len(running) < max_runs and not queue:
            running.add(run_id)
            start()
        else:
            queue.append(_Waiting(run_id, lambda: self._admit(key, run_id, start), still_waiting))

    def running(self, key: tuple[str, ...]) -> int:
        """Runs of `key` admitted and not ended (a test's view)."""
        return len(self._running.get(key, ()))

    def _admit(self, key: tuple[str, ...], run_id: str, start: Callable[[], None]) -> None:
        self._running[key].add(run_id)
        start()

    def run_ended(self, run_id: str) -> None:
        key = self._place_of.pop(run_id, None)
        if key is None:
            return
        running = self._running.get(key, set())
        running.discard(run_id)
        queue = self._queued.get(key, deque())
        while queue and len(running) < self._max_runs.get(key, 1):
            waiting = queue.popleft()
            if waiting.still_waiting():
                waiting.start()
            else:
                self._place_of.pop(waiting.run_id, None)
        if not running and not queue:
            self._running.pop(key, None)
            self._queued.pop(key, None)
            self._max_runs.pop(key, None)
