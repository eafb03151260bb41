"""A real `podium serve` process killed (SIGKILL) while a parent run waits for
its child run: after the restart the parent waits for the same child (no
second child starts), and ends with the child's output once it ends. Killed
while the parent waits to retry a failed child: after the restart the retry
starts one new child, as the step's policy says, and no more."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from podium.testing import (
    ServerProcess,
    Stubs,
    collect_events,
    create_workflow,
    eventually,
    get_run,
    plain,
    start_run,
    step_of,
    step_reaches,
)
from podium.v1 import execution_service_pb2, run_pb2

StartServing = Callable[..., ServerProcess]
R = run_pb2
X = execution_service_pb2


async def children_of(stubs: Stubs, run: str) -> list[R.Run]:
    response = await stubs.executions.ListRuns(X.ListRunsRequest(parent_run=run))
    return list(response.runs)


async def test_a_parent_waiting_for_its_child_survives_kill_9(start_serving: StartServing) -> None:
    inner = {
        "steps": [{"id": "gate", "waitForSignal": {"name": "go"}}],
        "output": {"got": "steps.gate.output"},
    }
    outer = {
        "steps": [
            {"id": "sub", "workflow": {"name": "inner", "input": {"order": "input.order"}}},
        ],
        "output": {"child": "steps.sub.output.got"},
    }
    first = start_serving()
    async with grpc.aio.insecure_channel(first.address) as channel:
        stubs = Stubs.on(channel)
        await create_workflow(stubs, "inner", inner)
        await create_workflow(stubs, "outer", outer)
        run = await start_run(stubs, "outer", {"order": "A-1"})
        await step_reaches(stubs, run.name, "sub", R.STEP_STATE_WAITING)
        (child,) = await children_of(stubs, run.name)
        await step_reaches(stubs, child.name, "gate", R.STEP_STATE_WAITING)
    first.kill()  # SIGKILL: nothing flushed, nothing shut down

    second = start_serving()
    async with grpc.aio.insecure_channel(second.address) as channel:
        stubs = Stubs.on(channel)
        await step_reaches(stubs, child.name, "gate", R.STEP_STATE_WAITING)

        async def signalled() -> bool:
            try:
                await stubs.executions.SignalRun(
                    X.SignalRunRequest(run=child.name, name="go", request_id="go-1")
                )
            except grpc.aio.AioRpcError as error:  # the child is still being resumed
                if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                return False
            return True

        await eventually(signalled, what="the signal accepted after the restart")
        await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
        children = await children_of(stubs, run.name)
        shown = second.cli("runs", "get", run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    assert plain(final.output) == {"child": None}
    assert [c.name for c in children] == [child.name]
    assert step_of(final, "sub").state == R.STEP_STATE_SUCCEEDED
    # The child went on across the restart: its attempt was not interrupted.
    assert [a.state for a in step_of(final, "sub").attempts] == [R.ATTEMPT_STATE_SUCCEEDED]
    assert shown.returncode == 0, shown.stderr
    assert child.name in shown.stdout and "child runs" in shown.stdout


async def test_a_child_retry_survives_kill_9_with_one_child_per_attempt(
    start_serving: StartServing,
) -> None:
    # Every child fails (a new child is a new run: `flaky` fails its first
    # attempt in each); the parent's step retries once, and is killed while
    # it waits for the retry's due time.
    inner = {"steps": [{"id": "boom", "agent": "flaky", "config": {"fail_attempts": 1}}]}
    outer = {
        "steps": [
            {
                "id": "sub",
                "workflow": {"name": "inner"},
                "retry": [{"errorEquals": ["FlakyError"], "interval": "2s", "maxAttempts": 2}],
            }
        ]
    }
    first = start_serving()
    async with grpc.aio.insecure_channel(first.address) as channel:
        stubs = Stubs.on(channel)
        await create_workflow(stubs, "inner", inner)
        await create_workflow(stubs, "outer", outer)
        run = await start_run(stubs, "outer")

        async def retrying() -> bool:
            step = step_of(await get_run(stubs, run.name), "sub")
            return step.reason.startswith("retrying")

        await eventually(retrying, what="the step waiting to retry its child")
        assert len(await children_of(stubs, run.name)) == 1
    first.kill()

    second = start_serving()
    async with grpc.aio.insecure_channel(second.address) as channel:
        stubs = Stubs.on(channel)
        await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
        children = [await get_run(stubs, c.name) for c in await children_of(stubs, run.name)]
    sub = step_of(final, "sub")
    assert final.state == R.RUN_STATE_FAILED
    assert [a.state for a in sub.attempts] == [R.ATTEMPT_STATE_FAILED] * 2
    assert sub.failure.type == "FlakyError"
    assert len(children) == 2
    assert [c.state for c in children] == [R.RUN_STATE_FAILED] * 2
    assert {c.parent_step for c in children} == {"sub"}
