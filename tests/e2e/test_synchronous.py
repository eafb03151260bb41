"""`podium serve --synchronous normal`: commits are not synced to disk one by
one, and what it promises holds: an acknowledged run survives the server
being killed (kill -9)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import grpc

from podium.testing import (
    ServerProcess,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    start_run,
)
from podium.testing.process import CLI
from podium.v1 import event_pb2

StartServing = Callable[..., ServerProcess]
RUNS = 20


async def test_with_synchronous_normal_acknowledged_runs_survive_a_kill(
    start_serving: StartServing,
) -> None:
    first = start_serving(args=("--synchronous", "normal"))
    async with grpc.aio.insecure_channel(first.address) as channel:
        stubs = Stubs.on(channel)
        await create_workflow(stubs, "chain", {"steps": [echo_step("a"), echo_step("b", "a")]})
        runs = [await start_run(stubs, "chain") for _ in range(RUNS)]
    first.kill()  # right after the last StartRun was acknowledged
    assert "synchronous=NORMAL" in first.log_text()

    second = start_serving()  # the default, FULL, on the same database
    async with grpc.aio.insecure_channel(second.address) as channel:
        stubs = Stubs.on(channel)
        histories = [await collect_events(stubs, run.name) for run in runs]
    assert second.stop() == 0
    assert [h[-1].type for h in histories] == [event_pb2.RUN_EVENT_TYPE_RUN_SUCCEEDED] * RUNS


def test_an_unknown_synchronous_mode_is_refused() -> None:
    result = subprocess.run(
        [*CLI, "serve", "--synchronous", "off"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "--synchronous" in result.stderr
    assert "Traceback" not in result.stderr
