"""The engine's task relay (podium.engine.relay) as a run's owner, on two real
SQLite stores of one cluster file: server "a" relays; server "b"'s side is
played through its own RelayStore (what its TaskRelay would write). Each pass
of a's relay is driven by hand (`poll()`), so nothing depends on timing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from podium.core.clock import SystemClock
from podium.core.failures import AgentError
from podium.core.model import RunRecord
from podium.core.relay_model import RelayTask, WorkerOffer
from podium.core.states import RunState
from podium.engine.relay import TaskRelay
from podium.engine.workers import AttemptInterrupted, WorkerPool
from podium.store.sqlite.cluster import SqliteCluster
from podium.store.sqlite.relay import SqliteRelay
from podium.store.sqlite.store import SqliteStore
from podium.testing import FakeStepContext

LEASE = 30.0


@dataclass
class Server:
    store: SqliteStore
    cluster: SqliteCluster
    relay: SqliteRelay


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[tuple[Server, Server]]:
    path = str(tmp_path / "cluster.db")
    opened = []
    for server_id in ("a", "b"):
        store = SqliteStore(path, server_id=server_id)
        await store.open()
        opened.append(Server(store, SqliteCluster(store), SqliteRelay(store)))
    try:
        for server in opened:
            await server.cluster.join(time.time(), LEASE)
        yield opened[0], opened[1]
    finally:
        for server in opened:
            await server.store.close()


async def owned_run(server: Server, run_id: str) -> None:
    server.cluster.own_new_run(run_id)
    server.store.put_run(RunRecord(run_id, "wf", 1, RunState.RUNNING, {}, time.time()))
    await server.store.commit()


def relay_task(run_id: str, epoch: int = 1) -> RelayTask:
    return RelayTask(run_id, "s", -1, 1, epoch, "default", "wlog", "default", {"input": {}})


async def until(condition: Any, relay: TaskRelay) -> None:
    """Passes of `relay` until `condition()` holds (each pass reads the database once)."""
    for _ in range(200):
        await relay.poll()
        if await condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def posted(b: Server) -> int:
    for _ in range(200):
        pending = await b.relay.pending([WorkerOffer("default", "wlog")], 10)
        if pending:
            return pending[0].task_id
        await asyncio.sleep(0.001)
    raise AssertionError("nothing was posted")


def owner(a: Server, *, unserved_grace: float = 0.0) -> TaskRelay:
    return TaskRelay(a.relay, WorkerPool(SystemClock()), unserved_grace=unserved_grace)


async def test_the_owner_records_what_the_holder_wrote(servers: tuple[Server, Server]) -> None:
    a, b = servers
    await owned_run(a, "r1")
    relay = owner(a)
    execution = asyncio.ensure_future(relay.execute(relay_task("r1"), FakeStepContext()))
    task_id = await posted(b)
    assert await b.relay.claim(task_id, time.time())
    assert await b.relay.finish(task_id, {"output": {"pid": 7}})

    await until(lambda: _done(execution), relay)
    assert execution.result() == {"pid": 7}


async def test_a_failure_written_by_the_holder_is_the_attempt_s(
    servers: tuple[Server, Server],
) -> None:
    a, b = servers
    await owned_run(a, "r1")
    relay = owner(a)
    execution = asyncio.ensure_future(relay.execute(relay_task("r1"), FakeStepContext()))
    task_id = await posted(b)
    assert await b.relay.claim(task_id, time.time())
    failure = {"type": "Boom", "message": "it broke", "retryable": False}
    assert await b.relay.finish(task_id, {"failure": failure})

    await until(lambda: _done(execution), relay)
    with pytest.raises(AgentError) as raised:
        execution.result()
    assert (raised.value.code, str(raised.value), raised.value.retryable) == (
        "Boom",
        "it broke",
        False,
    )


async def test_an_outcome_stamped_with_a_newer_owner_s_epoch_is_not_recorded(
    servers: tuple[Server, Server],
) -> None:
    a, b = servers
    await owned_run(a, "r1")
    relay = owner(a)
    execution = asyncio.ensure_future(relay.execute(relay_task("r1"), FakeStepContext()))
    task_id = await posted(b)
    assert await b.relay.claim(task_id, time.time())
    # a is presumed dead: b takes the run over and adopts the task (epoch 2).
    await b.cluster.renew(time.time() + 10 * LEASE, LEASE)
    assert await b.cluster.take_over(time.time() + 2 * LEASE) == ["r1"]
    assert len(await b.relay.adopt(["r1"])) == 1
    assert await b.relay.finish(task_id, {"output": {"pid": 7}})

    await until(lambda: _done(execution), relay)
    with pytest.raises(AttemptInterrupted, match="owner changed"):
        execution.result()


async def test_a_task_held_by_a_server_whose_lease_lapsed_is_interrupted(
    servers: tuple[Server, Server],
) -> None:
    a, b = servers
    await owned_run(a, "r1")
    relay = owner(a)
    execution = asyncio.ensure_future(relay.execute(relay_task("r1"), FakeStepContext()))
    task_id = await posted(b)
    assert await b.relay.claim(task_id, time.time())
    await b.cluster.renew(time.time() - 2 * LEASE, LEASE)  # b stopped renewing long ago

    await until(lambda: _done(execution), relay)
    with pytest.raises(AttemptInterrupted, match="server 'b' holding the worker stopped"):
        execution.result()


async def test_a_pending_task_no_live_server_serves_is_withdrawn(
    servers: tuple[Server, Server],
) -> None:
    a, b = servers
    await owned_run(a, "r1")
    relay = owner(a)
    execution = asyncio.ensure_future(relay.execute(relay_task("r1"), FakeStepContext()))
    task_id = await posted(b)

    await until(lambda: _done(execution), relay)
    with pytest.raises(AttemptInterrupted, match="no live server serves agent 'wlog'"):
        execution.result()
    assert not await b.relay.claim(task_id, time.time())


async def test_a_task_unserved_for_less_than_the_grace_is_kept_for_a_worker_that_comes_back(
    servers: tuple[Server, Server],
) -> None:
    a, b = servers
    await owned_run(a, "r1")
    relay = owner(a, unserved_grace=3600.0)
    execution = asyncio.ensure_future(relay.execute(relay_task("r1"), FakeStepContext()))
    task_id = await posted(b)
    for _ in range(20):  # passes that see no live server serving wlog
        await relay.poll()
    assert not execution.done()
    # A worker of b's (back within the grace) claims it and finishes it.
    assert await b.relay.claim(task_id, time.time())
    assert await b.relay.finish(task_id, {"output": {"ok": 1}})
    await until(lambda: _done(execution), relay)
    assert execution.result() == {"ok": 1}


async def test_a_cancelled_attempt_raises_the_cancel_flag(servers: tuple[Server, Server]) -> None:
    a, b = servers
    await owned_run(a, "r1")
    relay = owner(a)
    execution = asyncio.ensure_future(relay.execute(relay_task("r1"), FakeStepContext()))
    task_id = await posted(b)
    assert await b.relay.claim(task_id, time.time())

    execution.cancel()
    with pytest.raises(asyncio.CancelledError):
        await execution
    await relay.stop()  # waits for the background write of the flag
    assert await b.relay.cancelled([task_id]) == {task_id}


async def _done(execution: asyncio.Future[Any]) -> bool:
    return execution.done()
