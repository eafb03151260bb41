"""Any server of a cluster answers for runs another owns.

Events: WatchRuns and WatchRun on one server stream the events of runs another
server owns, each run's gap-free and in order, replay then live; the latency
the relay adds (the poll of the database's event feed) is printed: arrival at
the watcher minus the event's recording time, on the owner and on another
server. Control: CancelRun and ResolveApproval on a server that does not own
the run reach its owner."""

from __future__ import annotations

import asyncio
import statistics
import time
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
    resolve_approval,
    sequences,
    start_run,
    step_of,
    step_reaches,
)
from podium.v1 import event_pb2, execution_service_pb2, progress_service_pb2, run_pb2

E = event_pb2
R = run_pb2
RUNS = 10
CHAIN = {"steps": [echo_step(f"s{i}", *([f"s{i - 1}"] if i else [])) for i in range(5)]}


class AllRuns:
    """Every event a WatchRuns stream delivers, with its arrival time."""

    def __init__(self, stubs: Stubs) -> None:
        self.events: list[tuple[event_pb2.RunEvent, float]] = []
        self._call = stubs.progress.WatchRuns(
            progress_service_pb2.WatchRunsRequest(workflows=["workflows/chain"])
        )
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for response in self._call:
            now = time.time()
            self.events.extend((event, now) for event in response.events)

    def finished_runs(self) -> int:
        return sum(1 for e, _ in self.events if e.type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED)

    async def close(self) -> None:
        self._call.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def latencies(events: list[tuple[event_pb2.RunEvent, float]]) -> list[float]:
    return [arrival - event.time.ToNanoseconds() / 1e9 for event, arrival in events]


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[int(len(ordered) * 0.95)]
    return (
        f"median {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms"
    )


async def test_watchers_on_any_server_see_runs_owned_by_another(cluster: Cluster) -> None:
    owner = cluster.start("owner")
    other = cluster.start("other")
    async with (
        grpc.aio.insecure_channel(owner.address) as owner_channel,
        grpc.aio.insecure_channel(other.address) as other_channel,
    ):
        on_owner, on_other = Stubs.on(owner_channel), Stubs.on(other_channel)
        await create_workflow(on_owner, "chain", CHAIN)
        here, there = AllRuns(on_owner), AllRuns(on_other)
        try:
            # Both streams are live once they saw a first run end.
            probe = await start_run(on_owner, "chain", {"n": -1})
            await eventually(
                lambda: here.finished_runs() > 0 and there.finished_runs() > 0,
                what="both streams live",
            )
            runs = [await start_run(on_owner, "chain", {"n": i}) for i in range(RUNS)]
            await eventually(
                lambda: here.finished_runs() == RUNS + 1 and there.finished_runs() == RUNS + 1,
                what="every run's end seen on both servers",
            )
        finally:
            await here.close()
            await there.close()
        # Replay: WatchRun on the other server, from the start and from the middle.
        for run in runs:
            replayed = await collect_events(on_other, run.name)
            assert sequences(replayed) == list(range(1, len(replayed) + 1))
            assert replayed[-1].type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED
            middle = len(replayed) // 2
            assert await collect_events(on_other, run.name, middle) == replayed[middle:]

    for watcher in (here, there):
        by_run: dict[str, list[int]] = {}
        for event, _ in watcher.events:
            if event.run != probe.name:
                by_run.setdefault(event.run, []).append(event.sequence)
        # Each run's events, all of them, once, in order (the stream started before
        # the runs did).
        assert sorted(by_run) == sorted(run.name for run in runs)
        for run_name, numbers in by_run.items():
            assert numbers == list(range(1, len(numbers) + 1)), run_name
    assert [e for e, _ in here.events if e.run == runs[0].name] == [
        e for e, _ in there.events if e.run == runs[0].name
    ]
    print(
        f"\nevent latency (recorded to received), WatchRuns on the owner: "
        f"{summary(latencies(here.events))}; on another server (poll "
        f"{cluster.poll * 1000:.0f} ms): {summary(latencies(there.events))}"
    )


async def test_control_rpcs_on_another_server_reach_the_run_s_owner(
    cluster: Cluster, hold_env: dict[str, str], release_file: Path
) -> None:
    """CancelRun and ResolveApproval sent to a server that does not own the run are
    carried out by the owner (a command through the database), and its refusals
    come back with their reasons."""
    owner = cluster.start("owner", env=hold_env)
    other = cluster.start("other", env=hold_env)
    gate = {"steps": [{"id": "gate", "approval": {"prompt": "ok?"}}, echo_step("after", "gate")]}
    held = {
        "steps": [
            {"id": "slow", "agent": "hold", "input": {}, "config": {"release": str(release_file)}}
        ]
    }
    async with (
        grpc.aio.insecure_channel(owner.address) as owner_channel,
        grpc.aio.insecure_channel(other.address) as other_channel,
    ):
        on_owner, on_other = Stubs.on(owner_channel), Stubs.on(other_channel)
        await create_workflow(on_owner, "gate", gate)
        await create_workflow(on_owner, "held", held)
        approved = await start_run(on_owner, "gate")
        rejected = await start_run(on_owner, "gate")
        cancelled = await start_run(on_owner, "held")
        for run in (approved, rejected):
            await collect_events(on_other, run.name, limit=3)  # ... APPROVAL_REQUESTED
        await step_reaches(on_other, cancelled.name, "slow", R.STEP_STATE_RUNNING)

        # A step that is not waiting for approval: refused by the owner, with its reason.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await resolve_approval(on_other, cancelled.name, "slow")
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(refused.value).reason == "NOT_WAITING_FOR_APPROVAL"

        answer = await resolve_approval(on_other, approved.name, "gate")
        assert step_of(answer, "gate").state == R.STEP_STATE_SUCCEEDED
        answer = await resolve_approval(
            on_other, rejected.name, "gate", E.APPROVAL_DECISION_REJECT, "no"
        )
        assert step_of(answer, "gate").state == R.STEP_STATE_FAILED
        reply = await on_other.executions.CancelRun(
            execution_service_pb2.CancelRunRequest(name=cancelled.name, reason="enough")
        )
        assert reply.run.state == R.RUN_STATE_CANCELLED

        finals = {
            run.name: await get_run(on_owner, run.name) for run in (approved, rejected, cancelled)
        }
        # Cancelling again: the run ended CANCELLED, answered as on one server.
        again = await on_other.executions.CancelRun(
            execution_service_pb2.CancelRunRequest(name=cancelled.name)
        )
        assert again.run.state == R.RUN_STATE_CANCELLED
    assert finals[approved.name].state == R.RUN_STATE_SUCCEEDED
    assert finals[rejected.name].state == R.RUN_STATE_FAILED
    assert finals[cancelled.name].state == R.RUN_STATE_CANCELLED
    assert finals[cancelled.name].failure.message == "enough"
