"""Hostile: PauseRun and ResumeRun racing SIGKILL. A `podium serve` killed the
moment ResumeRun (or PauseRun) answered comes back with the state the answer
gave: each is durable before it replies. A resumed run completes without a
second ResumeRun; a run paused again just before the kill stays paused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from podium.testing import (
    ServerProcess,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
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

StartServing = Callable[..., ServerProcess]


def held(release: Path) -> dict[str, object]:
    return {
        "steps": [
            {"id": "slow", "agent": "hold", "config": {"release": str(release)}},
            echo_step("after", "slow"),
        ]
    }


@pytest.mark.parametrize("last", ["resume", "pause"])
async def test_the_answer_before_a_sigkill_is_what_comes_back(
    start_serving: StartServing, hold_env: dict[str, str], release_file: Path, last: str
) -> None:
    first = start_serving(env=hold_env)
    try:
        async with grpc.aio.insecure_channel(first.address) as channel:
            stubs = Stubs.on(channel)
            await create_workflow(stubs, "held", held(release_file))
            run = await start_run(stubs, "held")

            async def running() -> bool:
                return len(step_of(await get_run(stubs, run.name), "slow").attempts) == 1

            await eventually(running, what="slow running")
            for _ in range(3):  # pause and resume back and forth, then the last word
                await stubs.executions.PauseRun(X.PauseRunRequest(name=run.name))
                await stubs.executions.ResumeRun(X.ResumeRunRequest(name=run.name))
            if last == "pause":
                reply = await stubs.executions.PauseRun(X.PauseRunRequest(name=run.name))
                assert reply.run.state == R.RUN_STATE_PAUSED
            first.kill()  # at once: no other call in between
    finally:
        first.kill()

    release_file.touch()
    second = start_serving(env=hold_env)
    async with grpc.aio.insecure_channel(second.address) as channel:
        stubs = Stubs.on(channel)
        if last == "resume":
            events = await collect_events(stubs, run.name)
            final = await get_run(stubs, run.name)
            assert final.state == R.RUN_STATE_SUCCEEDED
            assert len(of_type(events, E.RUN_EVENT_TYPE_RUN_RESUMED)) == 3
        else:

            async def recovered() -> bool:
                attempts = step_of(await get_run(stubs, run.name), "slow").attempts
                return [a.state for a in attempts] == [R.ATTEMPT_STATE_INTERRUPTED]

            await eventually(recovered, what="the interrupted attempt recorded")
            for _ in range(5):
                current = await get_run(stubs, run.name)
            assert current.state == R.RUN_STATE_PAUSED
            assert len(step_of(current, "slow").attempts) == 1
            await stubs.executions.ResumeRun(X.ResumeRunRequest(name=run.name))
            await collect_events(stubs, run.name)
            assert (await get_run(stubs, run.name)).state == R.RUN_STATE_SUCCEEDED
    assert second.stop() == 0
