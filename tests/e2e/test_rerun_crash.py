"""RerunRun and RerunRuns retried after a real `podium serve` process was
killed (SIGKILL) right after answering: what the first calls answered was
durable, so the retries return the same runs and start none."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from podium.testing import (
    ServerProcess,
    Stubs,
    collect_events,
    create_workflow,
    get_run,
    start_run,
)
from podium.v1 import execution_service_pb2, run_pb2

StartServing = Callable[..., ServerProcess]
R = run_pb2
X = execution_service_pb2
FLOW = {
    "steps": [
        {"id": "first", "agent": "echo", "input": {"n": "1"}},
        {"id": "broken", "agent": "flaky", "dependsOn": ["first"], "config": {"fail_attempts": 9}},
    ]
}


async def test_rerun_retries_after_kill_9_return_the_same_runs(
    start_serving: StartServing,
) -> None:
    single = X.RerunRunRequest(request_id="once")
    bulk = X.RerunRunsRequest(
        workflow="workflows/flow", states=[R.RUN_STATE_FAILED], request_id="nightly"
    )
    first = start_serving()
    async with grpc.aio.insecure_channel(first.address) as channel:
        stubs = Stubs.on(channel)
        await create_workflow(stubs, "flow", FLOW)
        originals = []
        for _ in range(2):
            run = await start_run(stubs, "flow")
            await collect_events(stubs, run.name)
            originals.append(await get_run(stubs, run.name))
        # The bulk call first: its filter must not see the single re-run.
        batch = await stubs.executions.RerunRuns(bulk)
        single.name = originals[0].name
        made = (await stubs.executions.RerunRun(single)).run
    first.kill()  # SIGKILL right after the answers: nothing flushed on the way out

    second = start_serving()
    async with grpc.aio.insecure_channel(second.address) as channel:
        stubs = Stubs.on(channel)
        again = (await stubs.executions.RerunRun(single)).run
        batch_again = await stubs.executions.RerunRuns(bulk)
        listed = await stubs.executions.ListRuns(X.ListRunsRequest(workflow="workflows/flow"))
    assert again.name == made.name
    assert again.rerun_of == originals[0].name
    assert sorted(batch.originals) == sorted(r.name for r in originals)
    assert list(batch_again.originals) == list(batch.originals)
    assert list(batch_again.runs) == list(batch.runs)
    # Two originals, one single re-run, two bulk re-runs: nothing more.
    assert len(listed.runs) == 5
