"""An event reaches a watcher only once its batch is committed, whatever the
store's writer does to keep commits off a chain's critical path (it runs a
commit's callbacks, publishing included, once the next batch is on its way
to disk, see store/sqlite/writer.py).

The commit is held for real: another connection takes SQLite's write lock on
the server's database file, so the writer's next transaction waits for it
(busy_timeout) with the batch that records the step's end. Nothing of that
batch may reach a WatchRun or WatchRuns subscriber, nor may the next step's
agent run (its attempt is in the same batch), until the lock is let go.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from podium.testing import (
    HoldAgent,
    Stubs,
    create_workflow,
    eventually,
    plugins_with,
    serving,
    start_run,
)
from podium.v1 import event_pb2, progress_service_pb2

# Well inside the writer's busy_timeout (5 s): holding longer would fail the store.
HOLD_SECONDS = 0.5


async def _watch_run(stubs: Stubs, run: str, seen: list[event_pb2.RunEvent]) -> None:
    request = progress_service_pb2.WatchRunRequest(run=run)
    async for response in stubs.progress.WatchRun(request):
        seen.extend(response.events)


async def _watch_runs(stubs: Stubs, seen: list[event_pb2.RunEvent]) -> None:
    async for response in stubs.progress.WatchRuns(progress_service_pb2.WatchRunsRequest()):
        seen.extend(response.events)


def _types(events: list[event_pb2.RunEvent], step_id: str) -> list[int]:
    return [event.type for event in events if event.step_id == step_id]


async def test_a_step_end_is_sent_to_watchers_only_after_its_commit(tmp_path: Path) -> None:
    db = tmp_path / "podium.db"
    hold = HoldAgent()
    spec = {
        "steps": [
            {"id": "first", "agent": "hold"},
            {"id": "second", "agent": "hold", "dependsOn": ["first"]},
        ]
    }
    async with serving(str(db), plugins=plugins_with([hold])) as (server, stubs):
        await create_workflow(stubs, "pair", spec)
        everything: list[event_pb2.RunEvent] = []
        live_all = asyncio.create_task(_watch_runs(stubs, everything))
        await eventually(lambda: server.engine.hub.subscriber_count >= 1)
        run = await start_run(stubs, "pair")
        of_run: list[event_pb2.RunEvent] = []
        live_run = asyncio.create_task(_watch_run(stubs, run.name, of_run))
        started = event_pb2.RUN_EVENT_TYPE_STEP_STARTED
        succeeded = event_pb2.RUN_EVENT_TYPE_STEP_SUCCEEDED
        try:
            # The first step's attempt is committed (its agent runs).
            await eventually(lambda: "first" in hold.held)
            await eventually(lambda: started in _types(of_run, "first"))
            await eventually(lambda: started in _types(everything, "first"))

            blocker = sqlite3.connect(db, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")  # SQLite's write lock: the writer waits
            try:
                hold.release("first")
                executor = server.engine.active[run.name.removeprefix("runs/")]
                # The engine has recorded the step's end and the next step's
                # attempt; within a few turns of the loop the writer takes
                # that batch to the locked file, where it waits.
                await eventually(lambda: executor.steps["second"].attempts != [])
                await asyncio.sleep(HOLD_SECONDS)
                assert succeeded not in _types(of_run, "first")
                assert succeeded not in _types(everything, "first")
                assert started not in _types(of_run, "second")
                assert "second" not in hold.held  # its attempt is not durable yet
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()

            await eventually(lambda: succeeded in _types(of_run, "first"))
            await eventually(lambda: succeeded in _types(everything, "first"))
            await eventually(lambda: "second" in hold.held)
            hold.release()
            await asyncio.wait_for(live_run, timeout=30)
        finally:
            live_all.cancel()
            live_run.cancel()
            await asyncio.gather(live_all, live_run, return_exceptions=True)
    # Gap-free, in order, once each.
    assert [event.sequence for event in of_run] == list(range(1, len(of_run) + 1))
    assert of_run[-1].type == event_pb2.RUN_EVENT_TYPE_RUN_SUCCEEDED
