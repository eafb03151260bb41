"""A real `podium serve` process killed with SIGKILL while runs are in flight
(a chain in a slow step, a fan-out half done, a durable wait), then restarted
on the same database: every run completes, what had finished (as far as any
watcher was told) does not run again, interrupted attempts are recorded and
followed by a new one, and each run's events stay gap-free."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
from test_cli_e2e import Served, start_serving, stop
from test_semantics_waits import APPROVE, resolve_when_ready

from podium.testing import (
    FINAL_EVENT_TYPES,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    eventually,
    get_run,
    of_type,
    plain,
    sequences,
    start_run,
    step_of,
)
from podium.v1 import event_pb2, progress_service_pb2, run_pb2

E = event_pb2
R = run_pb2

FAN_OUT_ITEMS = 50
WAIT_SECONDS = 3

CHAIN = {
    "steps": [
        echo_step("first", input={"x": "input.x"}),
        echo_step("slow", "first", delay_ms=1500, input={"x": "steps.first.output.x + 1"}),
        echo_step("last", "slow", input={"x": "steps.slow.output.x + 1"}),
    ]
}
FAN_OUT = {
    "steps": [
        echo_step("plan", input={"items": "input.items"}),
        echo_step(
            "each",
            "plan",
            delay_ms=250,
            forEach={"items": "steps.plan.output.items", "maxConcurrency": 10},
            input={"value": "item"},
        ),
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


class Watcher:
    """Every event one run's watcher receives, until the stream ends."""

    def __init__(self, stubs: Stubs, run: str) -> None:
        self.events: list[event_pb2.RunEvent] = []
        self._call = stubs.progress.WatchRun(progress_service_pb2.WatchRunRequest(run=run))
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError):  # the server dies under us
            async for response in self._call:
                self.events.extend(response.events)

    def snapshot(self) -> list[event_pb2.RunEvent]:
        return list(self.events)

    async def close(self) -> None:
        self._call.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def started_counts(events: Sequence[event_pb2.RunEvent]) -> dict[tuple[str, int], int]:
    """(step, item) -> how many attempts started."""
    counts: dict[tuple[str, int], int] = {}
    for event in events:
        if event.type in (E.RUN_EVENT_TYPE_STEP_STARTED, E.RUN_EVENT_TYPE_ITEM_STARTED):
            key = (event.step_id, event.item)
            counts[key] = counts.get(key, 0) + 1
    return counts


def finished_before(events: Sequence[event_pb2.RunEvent]) -> set[tuple[str, int]]:
    """(step, item) whose success a watcher was told about (so it was committed)."""
    return {
        (e.step_id, e.item if e.type == E.RUN_EVENT_TYPE_ITEM_SUCCEEDED else -1)
        for e in events
        if e.type in (E.RUN_EVENT_TYPE_STEP_SUCCEEDED, E.RUN_EVENT_TYPE_ITEM_SUCCEEDED)
    }


def attempts_by_item(step: run_pb2.StepRun) -> dict[int, list[run_pb2.Attempt]]:
    grouped: dict[int, list[run_pb2.Attempt]] = {}
    for attempt in step.attempts:
        grouped.setdefault(attempt.item, []).append(attempt)
    return grouped


def check_attempts(run: run_pb2.Run) -> int:
    """Every step's attempts, per item: numbered 1..n, the last one succeeded,
    each interrupted one followed by another. Returns how many were interrupted."""
    interrupted = 0
    for step in run.steps:
        for item, attempts in attempts_by_item(step).items():
            where = f"{run.name} {step.step_id} item {item}"
            assert [a.number for a in attempts] == list(range(1, len(attempts) + 1)), where
            assert attempts[-1].state == R.ATTEMPT_STATE_SUCCEEDED, where
            for attempt in attempts[:-1]:
                assert attempt.state == R.ATTEMPT_STATE_INTERRUPTED, where
                assert attempt.failure.type == "podium.Interrupted", where
                assert attempt.HasField("end_time"), where
                interrupted += 1
    return interrupted


async def test_sigkill_mid_flight_then_every_run_completes(tmp_path: Path) -> None:
    began = time.monotonic()
    db = tmp_path / "podium.db"
    first: Served = start_serving(db)
    watchers: dict[str, Watcher] = {}
    try:
        async with grpc.aio.insecure_channel(first.address) as channel:
            stubs = Stubs.on(channel)
            await create_workflow(stubs, "chain", CHAIN)
            await create_workflow(stubs, "fan", FAN_OUT)
            await create_workflow(stubs, "timer", TIMER)
            runs = {
                "chain": await start_run(stubs, "chain", {"x": 1}),
                "fan": await start_run(stubs, "fan", {"items": list(range(FAN_OUT_ITEMS))}),
                "timer": await start_run(stubs, "timer"),
            }
            watchers = {key: Watcher(stubs, run.name) for key, run in runs.items()}

            async def mid_flight() -> bool:
                chain = watchers["chain"].events
                fan = watchers["fan"].events
                timer = watchers["timer"].events
                return (
                    any(
                        e.type == E.RUN_EVENT_TYPE_STEP_STARTED and e.step_id == "slow"
                        for e in chain
                    )
                    and len(of_type(fan, E.RUN_EVENT_TYPE_ITEM_SUCCEEDED)) >= 15
                    and bool(of_type(timer, E.RUN_EVENT_TYPE_STEP_WAITING))
                )

            await eventually(mid_flight)
            first.process.kill()  # SIGKILL: no graceful anything
            first.process.wait(timeout=10)
            await asyncio.sleep(0.1)
            seen = {key: w.snapshot() for key, w in watchers.items()}
    finally:
        for watcher in watchers.values():
            await watcher.close()
        if first.process.poll() is None:
            first.process.kill()
    killed_at = time.monotonic()

    # Mid-flight indeed: nothing had finished, the fan-out was partly done.
    for key, events in seen.items():
        assert not [e for e in events if e.type in FINAL_EVENT_TYPES], key
    fan_done_before = len(of_type(seen["fan"], E.RUN_EVENT_TYPE_ITEM_SUCCEEDED))
    assert 15 <= fan_done_before < FAN_OUT_ITEMS
    due = of_type(seen["timer"], E.RUN_EVENT_TYPE_STEP_WAITING)[0].due_time.ToSeconds()

    second = start_serving(db)
    try:
        async with grpc.aio.insecure_channel(second.address) as channel:
            stubs = Stubs.on(channel)
            histories = {key: await collect_events(stubs, run.name) for key, run in runs.items()}
            finals = {key: await get_run(stubs, run.name) for key, run in runs.items()}
    finally:
        assert stop(second) == 0
    elapsed = time.monotonic() - began

    total_interrupted = 0
    for key, history in histories.items():
        final = finals[key]
        assert final.state == R.RUN_STATE_SUCCEEDED, (key, final.failure)
        assert history[-1].type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED, key
        # Gap-free, and what a watcher saw before the crash was kept as it was.
        assert sequences(history) == list(range(1, len(history) + 1)), key
        assert history[: len(seen[key])] == seen[key], key
        assert final.last_sequence == history[-1].sequence
        assert len(of_type(history, E.RUN_EVENT_TYPE_RUN_CREATED)) == 1
        assert len(of_type(history, E.RUN_EVENT_TYPE_RUN_STARTED)) == 1
        # What had finished did not run again.
        before = started_counts(seen[key])
        after = started_counts(history)
        for step_id, item in finished_before(seen[key]):
            assert after[(step_id, item)] == before[(step_id, item)], (key, step_id, item)
            step = step_of(final, step_id)
            assert len(attempts_by_item(step)[item]) == before[(step_id, item)]
        total_interrupted += check_attempts(final)
        for step in final.steps:
            assert step.state == R.STEP_STATE_SUCCEEDED, (key, step.step_id)
        # Each interrupted attempt is reported as such once, after the restart.
        reported = [
            e
            for e in history[len(seen[key]) :]
            if e.type == E.RUN_EVENT_TYPE_STEP_FAILED and e.failure.type == "podium.Interrupted"
        ]
        assert len(reported) == sum(
            1 for s in final.steps for a in s.attempts if a.state == R.ATTEMPT_STATE_INTERRUPTED
        )

    chain = step_of(finals["chain"], "slow")
    assert [a.state for a in chain.attempts] == [
        R.ATTEMPT_STATE_INTERRUPTED,
        R.ATTEMPT_STATE_SUCCEEDED,
    ]
    assert plain(finals["chain"].output) == {"last": {"x": 3}}

    each = step_of(finals["fan"], "each")
    assert plain(each.output) == [{"value": i} for i in range(FAN_OUT_ITEMS)]
    assert (each.items_total, each.items_succeeded, each.items_failed) == (FAN_OUT_ITEMS,) * 2 + (
        0,
    )
    assert any(a.state == R.ATTEMPT_STATE_INTERRUPTED for a in each.attempts)
    assert plain(finals["fan"].output) == {"after": {"count": FAN_OUT_ITEMS}}

    pause = step_of(finals["timer"], "pause")
    assert pause.due_time.ToSeconds() == due or not pause.HasField("due_time")
    waited = of_type(histories["timer"], E.RUN_EVENT_TYPE_STEP_SUCCEEDED)
    pause_done = next(e for e in waited if e.step_id == "pause").time.ToNanoseconds() / 1e9
    # The timer kept its due time: it did not start over after the restart.
    assert due <= pause_done < due + 1.5, (due, pause_done)
    assert len(of_type(histories["timer"], E.RUN_EVENT_TYPE_STEP_WAITING)) == 1

    assert total_interrupted >= 2
    print(
        f"\ncrash recovery: killed after {killed_at - began:.1f} s, "
        f"{total_interrupted} interrupted attempts, all done after {elapsed:.1f} s"
    )
    assert elapsed < 20, elapsed


async def test_sigkill_while_waiting_for_approval_then_approvable(tmp_path: Path) -> None:
    """No graceful stop here: the store says WAITING_APPROVAL, whatever the
    shutdown path does."""
    db = tmp_path / "podium.db"
    spec = {"steps": [{"id": "gate", "approval": {"prompt": "ok?"}}, echo_step("after", "gate")]}
    first = start_serving(db)
    try:
        async with grpc.aio.insecure_channel(first.address) as channel:
            stubs = Stubs.on(channel)
            await create_workflow(stubs, "gate", spec)
            run = await start_run(stubs, "gate")
            await collect_events(stubs, run.name, limit=3)  # ... APPROVAL_REQUESTED
    finally:
        first.process.kill()
        first.process.wait(timeout=10)

    second = start_serving(db)
    try:
        async with grpc.aio.insecure_channel(second.address) as channel:
            stubs = Stubs.on(channel)
            await resolve_when_ready(stubs, run.name, "gate", APPROVE)
            events = await collect_events(stubs, run.name)
            final = await get_run(stubs, run.name)
    finally:
        assert stop(second) == 0
    assert final.state == R.RUN_STATE_SUCCEEDED
    assert sequences(events) == list(range(1, len(events) + 1))
