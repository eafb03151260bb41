"""Run admission: a workflow's concurrency quota (its most running runs).

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
