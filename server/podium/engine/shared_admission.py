"""Cluster mode: a run's admission across servers.

After the local admission (admission.py: the workflow-scope concurrency quotas
and run_concurrency, which queue runs first come first served on this server),
a run also takes, in the database, a lease of each limit that applies to it;
it starts only once it holds them all, and gives them back when it ends or
is lost to another server. The leases are the shared quotas' rows
(`quota_leases`): they count only while their server's lease is live, so a dead
server's runs stop holding theirs and, resumed by the survivors, take them anew.

A run waiting here is what a run queued locally is: PENDING (or, resumed, as
it was), with nothing recorded. Waiting servers poll: across servers the order
is not first come first served. A single server never gets here (no await is
added to its start path).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

from podium.governance.policy import RESERVED_QUOTA_PREFIX

log = logging.getLogger("podium.engine")

# A waiting run asks the database again after this, growing by half each time
# the leases are still held, up to POLL_MAX: a freed place is noticed within
# POLL_MAX, and a few waiting runs do not keep the database busy.
POLL_FIRST = 0.05
POLL_MAX = 0.5
# After a store error, the next try comes after this, doubling up to ERROR_MAX.
ERROR_FIRST = 0.1
ERROR_MAX = 5.0
# A run_concurrency key longer than this names its lease by its hash.
MAX_KEY_CHARS = 200


class RunLeases(Protocol):
    """What the shared admission takes leases through (Governance)."""

    async def take_run_leases(self, leases: list[tuple[str, int]], lease_id: str) -> bool: ...

    def release_run_leases(self, lease_id: str) -> None: ...


def run_concurrency_lease(tenant: str, workflow_id: str, key: str) -> str:
    """The shared lease name of a run_concurrency key: unambiguous (JSON, whatever
    the tenant or key hold), and bounded (a long key by its hash)."""
    if len(key) > MAX_KEY_CHARS:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return RESERVED_QUOTA_PREFIX + json.dumps([tenant, workflow_id, key], separators=(",", ":"))


def next_poll(delay: float) -> float:
    return min(delay * 1.5, POLL_MAX)


def next_error_wait(delay: float) -> float:
    return min(delay * 2, ERROR_MAX)


class SharedRunAdmission:
    def __init__(self, leases: RunLeases, ready: Callable[[], Awaitable[object]]) -> None:
        """`ready`: returns once this server has joined the cluster (before, its
        leases would not count, and joining drops those of an earlier life)."""
        self._leases = leases
        self._ready = ready
        # Runs admitted here: their lease id, until they end or are lost.
        self._held: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def held(self) -> int:
        """Runs holding shared leases (a test's view)."""
        return len(self._held)

    def start_when_admitted(
        self,
        run_id: str,
        leases: list[tuple[str, int]],
        start: Callable[[], None],
        still_waiting: Callable[[], bool],
    ) -> None:
        """Calls `start` once the run holds every lease (name, max) across the
        cluster; never if `still_waiting` turns False first (the run ended or was
        lost), and then holds nothing."""
        if not leases:
            start()
            return
        task = asyncio.create_task(
            self._admit(run_id, leases, start, still_waiting), name=f"admit:{run_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _admit(
        self,
        run_id: str,
        leases: list[tuple[str, int]],
        start: Callable[[], None],
        still_waiting: Callable[[], bool],
    ) -> None:
        await self._ready()
        poll, error_wait, failed = POLL_FIRST, ERROR_FIRST, False
        while still_waiting():
            lease_id = uuid.uuid4().hex
            try:
                taken = await self._leases.take_run_leases(leases, lease_id)
            except asyncio.CancelledError:
                # Shutdown; a take that committed anyway stops counting with this
                # server's lease (and a restart under its id drops it).
                raise
            except Exception as error:
                # The take may have committed before the error reached us: drop it,
                # and never start the run without what it must hold.
                self._leases.release_run_leases(lease_id)
                if not failed:
                    log.warning(
                        "run %s: cannot take its shared admission leases (%s); retrying",
                        run_id,
                        error,
                        extra={"run_id": run_id},
                    )
                failed = True
                await asyncio.sleep(error_wait)
                error_wait = next_error_wait(error_wait)
                continue
            if taken:
                if still_waiting():
                    self.run_ended(run_id)  # never two lease sets for one run
                    self._held[run_id] = lease_id
                    start()
                else:  # ended (cancelled) or lost during the take
                    self._leases.release_run_leases(lease_id)
                return
            await asyncio.sleep(poll)
            poll = next_poll(poll)

    def run_ended(self, run_id: str) -> None:
        """Gives back the run's leases, if it holds any (it ended, or another
        server owns it now); a run still waiting stops at its next look."""
        lease_id = self._held.pop(run_id, None)
        if lease_id is not None:
            self._leases.release_run_leases(lease_id)

    async def close(self) -> None:
        """Shutdown: stops the waits (their runs resume wherever they are taken over)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
