"""Events across servers: WatchRuns and WatchRun on one server of a cluster
stream the events of runs another server owns, each run's gap-free and in
order, replay then live; and the latency the relay adds (the poll of the
database's event feed) is printed: arrival at the watcher minus the event's
recording time, for watchers on the owner and on another server."""

from __future__ import annotations

import asyncio
import statistics
import time

import grpc

from podium.testing import (
    Cluster,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    eventually,
    sequences,
    start_run,
)
from podium.v1 import event_pb2, progress_service_pb2

E = event_pb2
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
