"""Child runs in cluster mode (three `podium serve --cluster` processes on one
database, SQLite and PostgreSQL): a parent and its child end up owned by two
different servers (their first owner is killed with SIGKILL and the two
survivors split its runs), then CancelRun, sent to the server that does not
own the parent, cancels the parent and, through the parent's owner, the child
on its own owner."""

from __future__ import annotations

import sqlite3

import asyncpg
import grpc

from podium.testing import (
    Cluster,
    Stubs,
    create_workflow,
    eventually,
    get_run,
    start_run,
    step_of,
    step_reaches,
)
from podium.v1 import execution_service_pb2, run_pb2

R = run_pb2
X = execution_service_pb2
INNER = {"steps": [{"id": "gate", "waitForSignal": {"name": "go"}}]}
OUTER = {"steps": [{"id": "sub", "workflow": {"name": "inner"}}]}


async def owners(db: str, run_names: list[str]) -> dict[str, str]:
    """Each run's owning server, as the database says (no API tells it)."""
    ids = [name.removeprefix("runs/") for name in run_names]
    found: dict[str, str]
    if db.startswith("postgresql://"):
        server = await asyncpg.connect(db)
        try:
            rows = await server.fetch(
                "SELECT run_id, owner FROM run_owners WHERE run_id = ANY($1::text[])", ids
            )
        finally:
            await server.close()
        found = {row["run_id"]: row["owner"] for row in rows}
    else:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as local:
            marks = ", ".join("?" for _ in ids)
            query = f"SELECT run_id, owner FROM run_owners WHERE run_id IN ({marks})"
            found = dict(local.execute(query, ids).fetchall())
    return {f"runs/{run_id}": owner for run_id, owner in found.items()}


async def test_cancel_run_on_any_server_cancels_a_child_owned_by_another(
    cluster: Cluster,
) -> None:
    first = cluster.start("first")
    servers = {"second": cluster.start("second"), "third": cluster.start("third")}
    async with grpc.aio.insecure_channel(first.address) as channel:
        stubs = Stubs.on(channel)
        await create_workflow(stubs, "inner", INNER)
        await create_workflow(stubs, "outer", OUTER)
        parent = await start_run(stubs, "outer")
        await step_reaches(stubs, parent.name, "sub", R.STEP_STATE_WAITING)
        children = await stubs.executions.ListRuns(X.ListRunsRequest(parent_run=parent.name))
        (child,) = children.runs
        await step_reaches(stubs, child.name, "gate", R.STEP_STATE_WAITING)
    assert await owners(cluster.db, [parent.name, child.name]) == {
        parent.name: "first",
        child.name: "first",
    }
    first.kill()

    # Taken over oldest first, a fair share each: the parent by one survivor,
    # the child by the other.
    async def split() -> bool:
        found = await owners(cluster.db, [parent.name, child.name])
        return set(found.values()) == set(servers)

    await eventually(split, what="the parent and its child taken over by different servers")
    found = await owners(cluster.db, [parent.name, child.name])
    elsewhere = servers[found[child.name]]
    async with grpc.aio.insecure_channel(elsewhere.address) as channel:
        stubs = Stubs.on(channel)
        await step_reaches(stubs, child.name, "gate", R.STEP_STATE_WAITING)

        async def cancelled_parent() -> bool:
            try:
                await stubs.executions.CancelRun(
                    X.CancelRunRequest(name=parent.name, reason="stop it all")
                )
            except grpc.aio.AioRpcError as error:  # still being resumed by its new owner
                if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                return False
            return True

        # Sent to the child's owner, which does not own the parent.
        await eventually(cancelled_parent, what="CancelRun accepted")

        async def both_cancelled() -> bool:
            states = [(await get_run(stubs, name)).state for name in (parent.name, child.name)]
            return states == [R.RUN_STATE_CANCELLED] * 2

        await eventually(both_cancelled, what="the parent and its child cancelled")
        final = await get_run(stubs, parent.name)
        ended_child = await get_run(stubs, child.name)
    assert step_of(final, "sub").state == R.STEP_STATE_CANCELLED
    assert step_of(ended_child, "gate").state == R.STEP_STATE_CANCELLED
    assert final.name.removeprefix("runs/") in ended_child.failure.message
