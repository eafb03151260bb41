"""A restart over more unfinished runs than one recovery batch: every run is
read back, resumes exactly once and continues as before; while recovery goes
on, reads answer from the store and changes wait for the run's resumption."""

from __future__ import annotations

import asyncio

import grpc

from podium.engine.recovery import RECOVERY_BATCH
from podium.testing import (
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    error_info,
    eventually,
    get_run,
    of_type,
    plain,
    resolve_approval,
    sequences,
    serving,
    start_run,
    step_of,
)
from podium.v1 import event_pb2, run_pb2

E = event_pb2
R = run_pb2

# Three batches, the last one short.
RUNS = 2 * RECOVERY_BATCH + 7
SPEC = {
    "steps": [
        {"id": "gate", "approval": {"prompt": "Go on with {{ input.i }}?"}},
        echo_step("after", "gate", input={"i": "input.i"}),
    ]
}


async def _start_waiting_runs(stubs: Stubs) -> list[str]:
    gate = asyncio.Semaphore(32)

    async def one(i: int) -> str:
        async with gate:
            return (await start_run(stubs, "gated", {"i": i})).name

    names = list(await asyncio.gather(*(one(i) for i in range(RUNS))))
    pending = list(names)

    async def all_waiting() -> bool:
        still = []
        for name in pending:
            if (await get_run(stubs, name)).state != R.RUN_STATE_WAITING_APPROVAL:
                still.append(name)
        pending[:] = still
        return not pending

    await eventually(all_waiting, what=f"{RUNS} runs waiting for approval")
    return names


async def _approve_once_resumed(stubs: Stubs, name: str) -> None:
    """Approves `name`'s gate, retrying while the run is still being resumed."""
    while True:
        try:
            await resolve_approval(stubs, name, "gate")
            return
        except grpc.aio.AioRpcError as error:
            info = error_info(error)
            if info is None or info.reason != "RUN_RESUMING":
                raise
            await asyncio.sleep(0.01)


async def test_runs_beyond_one_batch_each_resume_once_and_finish(db_path: str) -> None:
    async with serving(db_path) as (server, stubs):
        await create_workflow(stubs, "gated", SPEC)
        names = await _start_waiting_runs(stubs)
        before = {name: (await get_run(stubs, name)).last_sequence for name in names}
        await server.stop(0.5)

    async with serving(db_path) as (server, stubs):
        # Reads during (or after) recovery say what the store says: every run waits.
        for name in names[:: RECOVERY_BATCH // 4]:
            view = await get_run(stubs, name)
            assert view.state == R.RUN_STATE_WAITING_APPROVAL
            assert view.last_sequence >= before[name]
        gate = asyncio.Semaphore(32)

        async def approve(name: str) -> None:
            async with gate:
                await _approve_once_resumed(stubs, name)

        await asyncio.gather(*(approve(name) for name in names))
        assert len(server.engine.active) <= RUNS

        for index, name in enumerate(names):
            events = await collect_events(stubs, name)
            assert sequences(events) == list(range(1, len(events) + 1)), name
            assert events[-1].type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED, name
            # Driven once: one decision, one start of the next step, one attempt.
            assert len(of_type(events, E.RUN_EVENT_TYPE_APPROVAL_RESOLVED)) == 1, name
            started = of_type(events, E.RUN_EVENT_TYPE_STEP_STARTED)
            assert [e.step_id for e in started].count("after") == 1, name
            assert len(of_type(events, E.RUN_EVENT_TYPE_RUN_CREATED)) == 1, name
            final = await get_run(stubs, name)
            assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
            after = step_of(final, "after")
            assert [a.state for a in after.attempts] == [R.ATTEMPT_STATE_SUCCEEDED]
            # It continued with its own input, as before the restart.
            assert plain(after.output) == {"i": index}
        assert not server.engine.active
