"""GetRun of a run with many attempts: translated off the event loop (from a
copy of the records while the run goes on), and the same whichever way."""

from __future__ import annotations

from podium.engine.engine import SNAPSHOT_ATTEMPTS
from podium.testing import (
    HoldAgent,
    collect_events,
    create_workflow,
    echo_step,
    eventually,
    get_run,
    plugins_with,
    serving,
    start_run,
    step_of,
)
from podium.v1 import run_pb2

ITEMS = SNAPSHOT_ATTEMPTS + 100


async def test_a_large_run_reads_the_same_while_running_and_once_stored() -> None:
    hold = HoldAgent()
    spec = {
        "steps": [
            echo_step("each", forEach={"items": "input.items"}, input={"v": "item"}),
            {"id": "after", "agent": "hold", "dependsOn": ["each"]},
        ]
    }
    async with serving(plugins=plugins_with([hold])) as (_, stubs):
        await create_workflow(stubs, "big", spec)
        run = await start_run(stubs, "big", {"items": list(range(ITEMS))})
        await eventually(lambda: "after" in hold.held)
        running = await get_run(stubs, run.name)  # from the engine's records
        hold.release()
        await collect_events(stubs, run.name)
        ended = await get_run(stubs, run.name)  # from the store
    assert running.state == run_pb2.RUN_STATE_RUNNING
    each = step_of(running, "each")
    assert each.state == run_pb2.STEP_STATE_SUCCEEDED
    assert [a.item for a in each.attempts] == list(range(ITEMS))
    assert {a.state for a in each.attempts} == {run_pb2.ATTEMPT_STATE_SUCCEEDED}
    assert step_of(running, "after").state == run_pb2.STEP_STATE_RUNNING
    assert ended.state == run_pb2.RUN_STATE_SUCCEEDED
    assert step_of(ended, "each") == each
    assert step_of(ended, "after").state == run_pb2.STEP_STATE_SUCCEEDED
