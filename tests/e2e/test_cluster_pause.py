"""Hostile PauseRun / ResumeRun in cluster mode: asked of a server that does not
own the run, relayed to its owner (the answer says PAUSED, and nothing new
starts); the owner killed (SIGKILL) while the run is paused: the server that
takes the run over keeps it paused until ResumeRun, then it completes. An
unknown run is NOT_FOUND on any server; a finished one RUN_ALREADY_ENDED."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from podium.testing import (
    Cluster,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    error_info,
    eventually,
    get_run,
    of_type,
    start_run,
    step_of,
)
from podium.v1 import event_pb2, execution_service_pb2, run_pb2

E = event_pb2
R = run_pb2
X = execution_service_pb2


async def test_pause_through_another_server_and_a_takeover_keeps_it_paused(
    cluster: Cluster, hold_env: dict[str, str], release_file: Path
) -> None:
    owner = cluster.start("owner", env=hold_env)
    other = cluster.start("other", env=hold_env)
    spec = {
        "steps": [
            {"id": "slow", "agent": "hold", "config": {"release": str(release_file)}},
            echo_step("after", "slow"),
        ]
    }
    async with (
        grpc.aio.insecure_channel(owner.address) as owner_channel,
        grpc.aio.insecure_channel(other.address) as other_channel,
    ):
        on_owner, on_other = Stubs.on(owner_channel), Stubs.on(other_channel)
        await create_workflow(on_owner, "held", spec)
        run = await start_run(on_owner, "held")

        async def running() -> bool:
            return len(step_of(await get_run(on_other, run.name), "slow").attempts) == 1

        await eventually(running, what="slow running on the owner")
        paused = await on_other.executions.PauseRun(
            X.PauseRunRequest(name=run.name, reason="relayed")
        )
        assert paused.run.state == R.RUN_STATE_PAUSED
        assert (await get_run(on_owner, run.name)).state == R.RUN_STATE_PAUSED
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await on_other.executions.PauseRun(X.PauseRunRequest(name="runs/nope"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND

        owner.kill()  # the owner dies while the run is paused
        release_file.touch()

        async def taken_over() -> bool:
            attempts = step_of(await get_run(on_other, run.name), "slow").attempts
            return [a.state for a in attempts] == [R.ATTEMPT_STATE_INTERRUPTED]

        await eventually(taken_over, what="the other server taking the run over")
        for _ in range(5):
            current = await get_run(on_other, run.name)
        assert current.state == R.RUN_STATE_PAUSED
        assert len(step_of(current, "slow").attempts) == 1

        resumed = await on_other.executions.ResumeRun(X.ResumeRunRequest(name=run.name))
        assert resumed.run.state in (R.RUN_STATE_RUNNING, R.RUN_STATE_SUCCEEDED)
        events = await collect_events(on_other, run.name)
        final = await get_run(on_other, run.name)
        assert final.state == R.RUN_STATE_SUCCEEDED
        assert [e.message for e in of_type(events, E.RUN_EVENT_TYPE_RUN_PAUSED)] == ["relayed"]
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await on_other.executions.ResumeRun(X.ResumeRunRequest(name=run.name))
        assert error_info(ended.value).reason == "RUN_ALREADY_ENDED"
