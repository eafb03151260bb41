"""A paused run survives SIGKILL: a real `podium serve` killed while the run
is paused with fan-out items running comes back with the run PAUSED, starts
nothing until `podium runs resume`, then completes. The CLI's pause, resume
and their one-line errors are exercised on the way."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import grpc

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
from podium.v1 import event_pb2, run_pb2

E = event_pb2
R = run_pb2

StartServing = Callable[..., ServerProcess]
OneLineError = Callable[..., None]

ITEMS = 6
CONCURRENCY = 2


def fan_out(release: Path) -> dict[str, object]:
    return {
        "steps": [
            {
                "id": "each",
                "agent": "hold",
                "forEach": {"items": "input.items", "maxConcurrency": CONCURRENCY},
                "input": {"value": "item"},
                "config": {"release": str(release)},
            },
            echo_step("after", "each", input={"count": "size(steps.each.output)"}),
        ]
    }


async def test_a_paused_run_stays_paused_after_sigkill_and_resumes(
    start_serving: StartServing,
    hold_env: dict[str, str],
    release_file: Path,
    one_line_error: OneLineError,
) -> None:
    first = start_serving(env=hold_env)
    try:
        async with grpc.aio.insecure_channel(first.address) as channel:
            stubs = Stubs.on(channel)
            await create_workflow(stubs, "fan", fan_out(release_file))
            run = await start_run(stubs, "fan", {"items": list(range(ITEMS))})

            async def items_running() -> bool:
                current = await get_run(stubs, run.name)
                return len(step_of(current, "each").attempts) == CONCURRENCY

            await eventually(items_running, what="two items running")
            paused = await asyncio.to_thread(
                first.cli, "runs", "pause", run.name, "--reason", "ops"
            )
            assert paused.returncode == 0, paused.stderr
            assert "paused" in paused.stdout.lower()
            assert (await get_run(stubs, run.name)).state == R.RUN_STATE_PAUSED
    finally:
        first.kill()  # SIGKILL while paused, two items in flight

    release_file.touch()  # anything that starts from now on finishes at once
    second = start_serving(env=hold_env)
    async with grpc.aio.insecure_channel(second.address) as channel:
        stubs = Stubs.on(channel)

        async def recovered() -> bool:
            attempts = step_of(await get_run(stubs, run.name), "each").attempts
            return [a.state for a in attempts] == [R.ATTEMPT_STATE_INTERRUPTED] * CONCURRENCY

        await eventually(recovered, what="the interrupted items recorded after the restart")
        for _ in range(5):  # round trips: a start the pause failed to hold would show
            current = await get_run(stubs, run.name)
        assert current.state == R.RUN_STATE_PAUSED
        assert len(step_of(current, "each").attempts) == CONCURRENCY

        resumed = await asyncio.to_thread(second.cli, "runs", "resume", run.name)
        assert resumed.returncode == 0, resumed.stderr
        events = await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
        ended = await asyncio.to_thread(second.cli, "runs", "pause", run.name)
        missing = await asyncio.to_thread(second.cli, "runs", "resume", "runs/nope")
    assert second.stop() == 0
    assert final.state == R.RUN_STATE_SUCCEEDED
    each = step_of(final, "each")
    assert each.items_succeeded == ITEMS
    # The two interrupted items ran again, once each; the rest once.
    assert len(each.attempts) == ITEMS + CONCURRENCY
    assert len(of_type(events, E.RUN_EVENT_TYPE_RUN_PAUSED)) == 1
    assert len(of_type(events, E.RUN_EVENT_TYPE_RUN_RESUMED)) == 1
    one_line_error(ended, "ended")
    one_line_error(missing, "not found")
