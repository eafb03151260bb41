"""Cluster mode's run admission across servers (podium.engine.shared_admission),
on two real SQLite stores of one cluster file, each with its own shared
Governance: what one server's runs hold, the other's wait for.

Waits are for events the code sets (a run started, a task ended); the timeouts
only bound a hang."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from podium.core.clock import SystemClock
from podium.engine.shared_admission import (
    MAX_KEY_CHARS,
    POLL_MAX,
    SharedRunAdmission,
    next_error_wait,
    next_poll,
    run_concurrency_lease,
)
from podium.governance.policy import Policy, QuotaPolicy
from podium.governance.service import Governance
from podium.store.sqlite.cluster import SqliteCluster
from podium.store.sqlite.governance_store import SqliteGovernanceStore
from podium.store.sqlite.store import SqliteStore

LEASE = 30.0
HANG = 10.0
POLICY = Policy(
    quotas=[QuotaPolicy(name="two-runs", scope="workflow:wf", dimension="concurrency", limit=2)]
)


async def ready() -> None:
    return None


@dataclass
class Server:
    store: SqliteStore
    governance: Governance
    admission: SharedRunAdmission


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[tuple[Server, Server]]:
    path = str(tmp_path / "cluster.db")
    opened: list[Server] = []
    for server_id in ("a", "b"):
        store = SqliteStore(path, server_id=server_id)
        await store.open()
        await SqliteCluster(store).join(time.time(), LEASE)
        governance = Governance(POLICY, SystemClock(), SqliteGovernanceStore(store), shared=True)
        opened.append(Server(store, governance, SharedRunAdmission(governance, ready)))
    try:
        yield opened[0], opened[1]
    finally:
        for server in opened:
            await server.admission.close()
            await server.store.close()


class Run:
    """A run as the engine hands it to admission: started once, waiting until then."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.started = asyncio.Event()
        self.ended = False

    def start(self) -> None:
        assert not self.started.is_set(), "started twice"
        self.started.set()

    def still_waiting(self) -> bool:
        return not self.ended


def admit(server: Server, run: Run, leases: list[tuple[str, int]] | None = None) -> None:
    wanted = server.governance.run_quota_leases("wf") if leases is None else leases
    server.admission.start_when_admitted(run.run_id, wanted, run.start, run.still_waiting)


async def end(server: Server, run: Run) -> None:
    run.ended = True
    server.admission.run_ended(run.run_id)
    await server.store.commit()


async def settled(server: Server) -> None:
    """Every wait of `server` has ended (admitted or given up)."""
    tasks = list(server.admission._tasks)
    await asyncio.wait_for(asyncio.gather(*tasks), HANG)


def test_lease_names_are_unambiguous_and_bounded() -> None:
    # A "/" in the tenant or the key cannot make two places one.
    assert run_concurrency_lease("a/b", "wf", "k") != run_concurrency_lease("a", "b", "wf/k")
    assert run_concurrency_lease("t", "wf", "k") == 'run_concurrency:["t","wf","k"]'
    long_key = "x" * (MAX_KEY_CHARS + 1)
    name = run_concurrency_lease("t", "wf", long_key)
    assert len(name) < MAX_KEY_CHARS and "sha256:" in name
    assert name != run_concurrency_lease("t", "wf", long_key + "y")


def test_waits_grow_and_stay_bounded() -> None:
    delay, waits = 0.05, []
    for _ in range(20):
        delay = next_poll(delay)
        waits.append(delay)
    assert waits == sorted(waits) and waits[-1] == POLL_MAX
    assert next_error_wait(0.1) == 0.2 and next_error_wait(1000.0) <= 5.0


async def test_a_workflow_quota_holds_across_two_servers(servers: tuple[Server, Server]) -> None:
    a, b = servers
    assert a.governance.run_quota_leases("wf") == [("two-runs", 2)]
    assert a.governance.run_quota_leases("other") == []
    first, second, third = Run("r1"), Run("r2"), Run("r3")
    admit(a, first)
    admit(a, second)
    await asyncio.wait_for(asyncio.gather(first.started.wait(), second.started.wait()), HANG)
    admit(b, third)
    # While a's two runs hold both places, b's run waits, however long b polls.
    task = next(iter(b.admission._tasks))
    await asyncio.sleep(0.2)
    assert not task.done() and not third.started.is_set()
    await end(a, first)
    await asyncio.wait_for(third.started.wait(), HANG)
    assert (a.admission.held, b.admission.held) == (1, 1)


async def test_a_run_ended_while_waiting_never_starts_and_holds_nothing(
    servers: tuple[Server, Server],
) -> None:
    a, b = servers
    lease = [("one", 1)]
    holder, waiter = Run("r1"), Run("r2")
    admit(a, holder, lease)
    await asyncio.wait_for(holder.started.wait(), HANG)
    admit(b, waiter, lease)
    await end(b, waiter)  # cancelled while it waits
    await end(a, holder)
    await settled(b)
    assert not waiter.started.is_set() and b.admission.held == 0
    # Its place is free: a third run, on either server, takes it.
    after = Run("r3")
    admit(b, after, lease)
    await asyncio.wait_for(after.started.wait(), HANG)


async def test_a_run_that_ended_during_its_take_gives_the_lease_back(
    servers: tuple[Server, Server],
) -> None:
    a, b = servers
    lease = [("one", 1)]
    looks: list[bool] = []

    def still_waiting() -> bool:
        # Waiting when the take begins, ended (cancelled) when it returns.
        looks.append(not looks)
        return looks[-1]

    def start() -> None:
        raise AssertionError("must not start")

    a.admission.start_when_admitted("r1", lease, start, still_waiting)
    await settled(a)
    assert looks == [True, False]
    await a.store.commit()
    other = Run("r2")
    admit(b, other, lease)
    await asyncio.wait_for(other.started.wait(), HANG)


async def test_a_lost_run_gives_back_its_place(servers: tuple[Server, Server]) -> None:
    a, b = servers
    lease = [("one", 1)]
    lost, next_one = Run("r1"), Run("r2")
    admit(a, lost, lease)
    await asyncio.wait_for(lost.started.wait(), HANG)
    admit(b, next_one, lease)
    a.admission.run_ended(lost.run_id)  # what Engine._lose does
    await a.store.commit()
    await asyncio.wait_for(next_one.started.wait(), HANG)
    assert a.admission.held == 0


class FailingTakes:
    """Governance's leases, whose first `failures` takes fail as a lost database
    connection would (after the take may have committed: it did, here)."""

    def __init__(self, governance: Governance, failures: int) -> None:
        self.governance = governance
        self.failures = failures
        self.released: list[str] = []

    async def take_run_leases(self, leases: list[tuple[str, int]], lease_id: str) -> bool:
        taken = await self.governance.take_run_leases(leases, lease_id)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("connection lost")
        return taken

    def release_run_leases(self, lease_id: str) -> None:
        self.released.append(lease_id)
        self.governance.release_run_leases(lease_id)


async def test_a_store_error_retries_logs_once_and_leaks_nothing(
    servers: tuple[Server, Server], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = servers
    lease = [("one", 1)]
    failing = FailingTakes(a.governance, failures=3)
    admission = SharedRunAdmission(failing, ready)
    run = Run("r1")
    with caplog.at_level(logging.WARNING, logger="podium.engine"):
        admission.start_when_admitted(run.run_id, lease, run.start, run.still_waiting)
        await asyncio.wait_for(run.started.wait(), HANG)
    warnings = [r for r in caplog.records if "shared admission leases" in r.getMessage()]
    assert len(warnings) == 1
    # Each failed take's lease was dropped: the run holds exactly one place, so
    # once it ends, b's run takes it.
    assert len(failing.released) == 3
    admission.run_ended(run.run_id)
    await a.store.commit()
    other = Run("r2")
    admit(b, other, lease)
    await asyncio.wait_for(other.started.wait(), HANG)
    await admission.close()


async def test_nothing_is_taken_before_the_server_joined(servers: tuple[Server, Server]) -> None:
    a, _ = servers
    joined = asyncio.Event()
    admission = SharedRunAdmission(a.governance, joined.wait)
    run = Run("r1")
    admission.start_when_admitted(run.run_id, [("one", 1)], run.start, run.still_waiting)
    await asyncio.sleep(0)
    assert not run.started.is_set()
    joined.set()
    await asyncio.wait_for(run.started.wait(), HANG)
    await admission.close()


def test_no_leases_starts_at_once() -> None:
    started: list[bool] = []
    never: Callable[[], bool] = lambda: True  # noqa: E731
    admission = SharedRunAdmission(Governance(Policy(), SystemClock()), ready)
    admission.start_when_admitted("r", [], lambda: started.append(True), never)
    assert started == [True]
    assert Governance(POLICY, SystemClock()).run_quota_leases("wf") == []
