"""Three `podium serve --cluster` processes on one database; one is killed (SIGKILL)
with runs in flight (a chain, a fan-out, a durable wait, an approval). The
survivors take its runs over within the lease and continue them as a restart
would: every run succeeds, nothing is lost, no step or item that had finished
runs again (attempt counts prove it), interrupted attempts are retried, and
watchers connected to a surviving server see each run's events gap-free,
across the takeover. The failover time (kill to the first event of a taken-over
run) is printed."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from podium.testing import (
    Cluster,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    eventually,
    get_run,
    of_type,
    plain,
    resolve_approval,
    sequences,
    start_run,
    step_of,
)
from podium.v1 import event_pb2, progress_service_pb2, run_pb2

E = event_pb2
R = run_pb2

FAN_OUT_ITEMS = 30
DONE_BEFORE_KILL = 10
FAN_OUT_CONCURRENCY = 5
WAIT_SECONDS = 4


def chain(hold: dict[str, str]) -> dict[str, Any]:
    return {
        "steps": [
            echo_step("first", input={"x": "input.x"}),
            {
                "id": "slow",
                "agent": "hold",
                "dependsOn": ["first"],
                "input": {"x": "steps.first.output.x + 1"},
                "config": hold,
            },
            echo_step("last", "slow", input={"x": "steps.slow.output.x + 1"}),
        ]
    }


def fan_out(hold: dict[str, str]) -> dict[str, Any]:
    return {
        "steps": [
            echo_step("plan", input={"items": "input.items"}),
            {
                "id": "each",
                "agent": "hold",
                "dependsOn": ["plan"],
                "forEach": {
                    "items": "steps.plan.output.items",
                    "maxConcurrency": FAN_OUT_CONCURRENCY,
                },
                "input": {"value": "item", "hold": f"item >= {DONE_BEFORE_KILL}"},
                "config": hold,
            },
            echo_step("after", "each", input={"count": "size(steps.each.output)"}),
        ]
    }


TIMER = {
    "steps": [
        echo_step("before"),
        {"id": "pause", "dependsOn": ["before"], "wait": {"duration": f"{WAIT_SECONDS}s"}},
        echo_step("after", "pause"),
    ]
}
GATE = {"steps": [{"id": "gate", "approval": {"prompt": "ok?"}}, echo_step("after", "gate")]}


class Watcher:
    """Every event a run's watcher receives (with when it arrived), until the stream ends."""

    def __init__(self, stubs: Stubs, run: str) -> None:
        self.events: list[event_pb2.RunEvent] = []
        self.arrivals: list[float] = []
        self._call = stubs.progress.WatchRun(progress_service_pb2.WatchRunRequest(run=run))
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for response in self._call:
            now = time.time()
            self.events.extend(response.events)
            self.arrivals.extend(now for _ in response.events)

    async def close(self) -> None:
        self._call.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def started_counts(events: Sequence[event_pb2.RunEvent]) -> dict[tuple[str, int], int]:
    counts: dict[tuple[str, int], int] = {}
    for event in events:
        if event.type in (E.RUN_EVENT_TYPE_STEP_STARTED, E.RUN_EVENT_TYPE_ITEM_STARTED):
            key = (event.step_id, event.item)
            counts[key] = counts.get(key, 0) + 1
    return counts


def finished(events: Sequence[event_pb2.RunEvent]) -> set[tuple[str, int]]:
    return {
        (e.step_id, e.item if e.type == E.RUN_EVENT_TYPE_ITEM_SUCCEEDED else -1)
        for e in events
        if e.type in (E.RUN_EVENT_TYPE_STEP_SUCCEEDED, E.RUN_EVENT_TYPE_ITEM_SUCCEEDED)
    }


def attempts_of(run: run_pb2.Run, step_id: str, item: int) -> list[run_pb2.Attempt]:
    return [a for a in step_of(run, step_id).attempts if a.item == item]


def check_attempts(run: run_pb2.Run) -> None:
    """Per step and item: numbered 1..n, the last succeeded, the others interrupted."""
    for step in run.steps:
        items = {a.item for a in step.attempts}
        for item in items:
            attempts = attempts_of(run, step.step_id, item)
            where = (run.name, step.step_id, item)
            assert [a.number for a in attempts] == list(range(1, len(attempts) + 1)), where
            assert attempts[-1].state == R.ATTEMPT_STATE_SUCCEEDED, where
            for attempt in attempts[:-1]:
                assert attempt.state == R.ATTEMPT_STATE_INTERRUPTED, where


async def test_kill_one_of_three_servers_then_the_others_finish_its_runs(
    cluster: Cluster, hold_env: dict[str, str], release_file: Path
) -> None:
    hold = {"release": str(release_file)}
    victim = cluster.start("victim", env=hold_env)
    survivor = cluster.start("survivor", env=hold_env)
    third = cluster.start("third", env=hold_env)
    watchers: dict[str, Watcher] = {}
    async with (
        grpc.aio.insecure_channel(victim.address) as victim_channel,
        grpc.aio.insecure_channel(survivor.address) as survivor_channel,
        grpc.aio.insecure_channel(third.address) as third_channel,
    ):
        on_victim = Stubs.on(victim_channel)
        on_survivor = Stubs.on(survivor_channel)
        on_third = Stubs.on(third_channel)
        try:
            for name, spec in (
                ("chain", chain(hold)),
                ("fan", fan_out(hold)),
                ("timer", TIMER),
                ("gate", GATE),
            ):
                await create_workflow(on_victim, name, spec)
            # The server that receives StartRun owns the run: these are the victim's,
            # and one is the survivor's own (it must not be disturbed).
            runs = {
                "chain": await start_run(on_victim, "chain", {"x": 1}),
                "fan": await start_run(on_victim, "fan", {"items": list(range(FAN_OUT_ITEMS))}),
                "gate": await start_run(on_victim, "gate"),
                "own": await start_run(on_survivor, "chain", {"x": 10}),
            }
            # Watched on another server than the owner: events cross servers.
            watchers = {key: Watcher(on_survivor, run.name) for key, run in runs.items()}

            def held() -> bool:
                chain_events, fan = watchers["chain"].events, watchers["fan"].events
                return (
                    any(
                        e.step_id == "slow" and e.type == E.RUN_EVENT_TYPE_STEP_STARTED
                        for e in chain_events
                    )
                    and len(of_type(fan, E.RUN_EVENT_TYPE_ITEM_SUCCEEDED)) == DONE_BEFORE_KILL
                    and len(of_type(fan, E.RUN_EVENT_TYPE_ITEM_STARTED))
                    == DONE_BEFORE_KILL + FAN_OUT_CONCURRENCY
                    and bool(of_type(watchers["gate"].events, E.RUN_EVENT_TYPE_APPROVAL_REQUESTED))
                    and any(
                        e.step_id == "slow" and e.type == E.RUN_EVENT_TYPE_STEP_STARTED
                        for e in watchers["own"].events
                    )
                )

            await eventually(held, what="every run held mid-flight, seen from the survivor")
            runs["timer"] = await start_run(on_victim, "timer")
            watchers["timer"] = Watcher(on_third, runs["timer"].name)
            await eventually(
                lambda: bool(of_type(watchers["timer"].events, E.RUN_EVENT_TYPE_STEP_WAITING)),
                what="the timer waiting",
            )
            seen = {key: list(w.events) for key, w in watchers.items()}
            killed_at = time.time()
            victim.kill()
        except BaseException:
            for watcher in watchers.values():
                await watcher.close()
            raise

        release_file.touch()

        async def approved() -> bool:
            # Through a server that does not own the run: the command reaches its
            # owner through the database (refused while the run is being resumed).
            try:
                await resolve_approval(on_third, runs["gate"].name, "gate")
            except grpc.aio.AioRpcError as error:
                if error.code() not in (
                    grpc.StatusCode.FAILED_PRECONDITION,
                    grpc.StatusCode.UNAVAILABLE,
                ):
                    raise
                return False
            return True

        await eventually(approved, what="the approval resolved after the takeover")
        try:
            await asyncio.wait_for(
                asyncio.gather(*(w.task for w in watchers.values())), timeout=120
            )
        finally:
            for watcher in watchers.values():
                await watcher.close()
        finals = {key: await get_run(on_survivor, run.name) for key, run in runs.items()}
        # Any server answers with the same records.
        for key, run in runs.items():
            assert (await get_run(on_third, run.name)) == finals[key], key

    failover: list[float] = []
    for key, watcher in watchers.items():
        history = watcher.events
        final = finals[key]
        assert final.state == R.RUN_STATE_SUCCEEDED, (key, final.failure)
        assert history[-1].type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED, key
        assert sequences(history) == list(range(1, len(history) + 1)), key
        assert history[: len(seen[key])] == seen[key], key
        assert len(of_type(history, E.RUN_EVENT_TYPE_RUN_STARTED)) == 1, key
        before, after = started_counts(seen[key]), started_counts(history)
        for step_id, item in finished(seen[key]):
            # Finished before the kill: never started again, one attempt.
            assert after[(step_id, item)] == before[(step_id, item)], (key, step_id, item)
            assert len(attempts_of(final, step_id, item)) == before[(step_id, item)]
        check_attempts(final)
        later = [e.time.ToNanoseconds() / 1e9 for e in history[len(seen[key]) :]]
        if key != "own" and later:
            failover.append(min(later) - killed_at)

    slow = step_of(finals["chain"], "slow")
    assert [a.state for a in slow.attempts] == [
        R.ATTEMPT_STATE_INTERRUPTED,
        R.ATTEMPT_STATE_SUCCEEDED,
    ]
    assert plain(finals["chain"].output) == {"last": {"x": 3}}
    assert plain(finals["own"].output) == {"last": {"x": 12}}
    # The survivor's own run was never interrupted.
    assert [a.state for a in step_of(finals["own"], "slow").attempts] == [R.ATTEMPT_STATE_SUCCEEDED]
    each = step_of(finals["fan"], "each")
    assert plain(each.output) == [{"value": i} for i in range(FAN_OUT_ITEMS)]
    interrupted = {a.item for a in each.attempts if a.state == R.ATTEMPT_STATE_INTERRUPTED}
    assert interrupted == set(range(DONE_BEFORE_KILL, DONE_BEFORE_KILL + FAN_OUT_CONCURRENCY))
    assert plain(finals["gate"].output) == {"after": {}} or finals["gate"].output is not None
    # Every taken-over run moved on after the kill, and not before its lease expired.
    assert len(failover) == 4
    assert min(failover) > 0
    print(
        f"\ncluster failover (lease {cluster.lease:g} s): first event of a taken-over run "
        f"{min(failover):.2f} s after kill -9, last {max(failover):.2f} s"
    )


async def test_a_stale_owner_s_late_writes_are_fenced_off(
    cluster: Cluster, hold_env: dict[str, str], release_file: Path
) -> None:
    """A server frozen (SIGSTOP) past its lease loses its run to another; thawed, its
    agent finishes and it writes: the batch leaves the run out, the server stops
    driving it and keeps serving, and the run's records are the new owner's only."""
    stale = cluster.start("stale", env=hold_env)
    survivor = cluster.start("survivor", env=hold_env)
    async with (
        grpc.aio.insecure_channel(stale.address) as stale_channel,
        grpc.aio.insecure_channel(survivor.address) as survivor_channel,
    ):
        on_stale, on_survivor = Stubs.on(stale_channel), Stubs.on(survivor_channel)
        await create_workflow(on_stale, "chain", chain({"release": str(release_file)}))
        run = await start_run(on_stale, "chain", {"x": 1})
        watcher = Watcher(on_survivor, run.name)
        try:
            await eventually(
                lambda: any(
                    e.step_id == "slow" and e.type == E.RUN_EVENT_TYPE_STEP_STARTED
                    for e in watcher.events
                ),
                what="the slow step running on the stale server",
            )
            stale.process.send_signal(signal.SIGSTOP)
            # Taken over: the survivor records the interrupted attempt and a new one.
            await eventually(
                lambda: (
                    len(
                        [
                            e
                            for e in watcher.events
                            if e.step_id == "slow" and e.type == E.RUN_EVENT_TYPE_STEP_STARTED
                        ]
                    )
                    == 2
                ),
                what="the run taken over by the survivor",
            )
            release_file.touch()
            await asyncio.wait_for(watcher.task, timeout=60)
        finally:
            stale.process.send_signal(signal.SIGCONT)
            await watcher.close()
        final = await get_run(on_survivor, run.name)
        # Thawed, the stale server's agent returns and its writes are refused.
        await eventually(
            lambda: "owned by another server now" in stale.log_text(),
            what="the stale server told it lost the run",
        )
        # Its late writes changed nothing; it still serves (its writer did not fail).
        assert await get_run(on_survivor, run.name) == final
        again = await collect_events(on_survivor, run.name)
        assert again == watcher.events
        await create_workflow(on_stale, "quick", {"steps": [echo_step("only")]})
        quick = await start_run(on_stale, "quick")
        assert (await collect_events(on_stale, quick.name))[-1].type == (
            E.RUN_EVENT_TYPE_RUN_SUCCEEDED
        )
    assert final.state == R.RUN_STATE_SUCCEEDED
    assert sequences(watcher.events) == list(range(1, len(watcher.events) + 1))
    assert [a.state for a in step_of(final, "slow").attempts] == [
        R.ATTEMPT_STATE_INTERRUPTED,
        R.ATTEMPT_STATE_SUCCEEDED,
    ]
