"""A real `podium serve` process killed with SIGKILL while runs are in flight
(a chain in a held step, a fan-out half done, a durable wait), then restarted
on the same database: every run completes, what had finished (as far as any
watcher was told) does not run again, interrupted attempts are recorded and
followed by a new one, and each run's events stay gap-free."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from podium.testing import (
    FINAL_EVENT_TYPES,
    ServerProcess,
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

# The fixture of tests/e2e/conftest.py.
StartServing = Callable[..., ServerProcess]

FAN_OUT_ITEMS = 50
# Items below this one never hold: exactly these have succeeded at the kill.
DONE_BEFORE_KILL = 15
FAN_OUT_CONCURRENCY = 10
# The durable wait's duration, longer on each try: the kill must come before
# it falls due, which only a machine busy beyond the shortest one delays.
WAIT_SECONDS = (3, 10, 30)


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


def timer(seconds: int) -> dict[str, Any]:
    return {
        "steps": [
            echo_step("before"),
            {"id": "pause", "dependsOn": ["before"], "wait": {"duration": f"{seconds}s"}},
            echo_step("after", "pause"),
        ]
    }


def iso(seconds: float) -> str:
    """As the engine writes instants in messages and outputs."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.isoformat().replace("+00:00", "Z")


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


async def wait_mid_flight(stubs: Stubs, watchers: dict[str, Watcher]) -> None:
    """Until the chain holds in its slow step and the fan-out holds with
    DONE_BEFORE_KILL items done and a full round of items running: a state
    that lasts, since nothing held is released before the kill."""

    def held() -> bool:
        chain = watchers["chain"].events
        fan = watchers["fan"].events
        return (
            any(e.type == E.RUN_EVENT_TYPE_STEP_STARTED and e.step_id == "slow" for e in chain)
            and len(of_type(fan, E.RUN_EVENT_TYPE_ITEM_SUCCEEDED)) == DONE_BEFORE_KILL
            and len(of_type(fan, E.RUN_EVENT_TYPE_ITEM_STARTED))
            == DONE_BEFORE_KILL + FAN_OUT_CONCURRENCY
        )

    await eventually(held, what="the chain and the fan-out held mid-flight")


async def freeze_mid_wait(
    server: ServerProcess, stubs: Stubs, watchers: dict[str, Watcher]
) -> run_pb2.Run:
    """Starts a timer run and freezes the server (SIGSTOP) while its wait
    is pending: frozen before the due time, it cannot have fired. A machine
    too busy to get there in time gets a longer wait on the next try."""
    for seconds in WAIT_SECONDS:
        workflow = f"timer-{seconds}"
        await create_workflow(stubs, workflow, timer(seconds))
        run = await start_run(stubs, workflow)
        watchers[workflow] = Watcher(stubs, run.name)

        def waiting(key: str = workflow) -> bool:
            return bool(of_type(watchers[key].events, E.RUN_EVENT_TYPE_STEP_WAITING))

        await eventually(waiting, what=f"{workflow} waiting")
        server.process.send_signal(signal.SIGSTOP)
        due = of_type(watchers[workflow].events, E.RUN_EVENT_TYPE_STEP_WAITING)[0].due_time
        if time.time() < due.ToNanoseconds() / 1e9:
            watchers["timer"] = watchers.pop(workflow)
            return run
        server.process.send_signal(signal.SIGCONT)
        await watchers.pop(workflow).close()
    raise AssertionError(
        f"no server could be frozen before a wait of {WAIT_SECONDS[-1]} s fell due"
    )


async def test_sigkill_mid_flight_then_every_run_completes(
    start_serving: StartServing, hold_env: dict[str, str], release_file: Path
) -> None:
    hold = {"release": str(release_file)}
    first = start_serving(env=hold_env)
    watchers: dict[str, Watcher] = {}
    try:
        async with grpc.aio.insecure_channel(first.address) as channel:
            stubs = Stubs.on(channel)
            await create_workflow(stubs, "chain", chain(hold))
            await create_workflow(stubs, "fan", fan_out(hold))
            runs = {
                "chain": await start_run(stubs, "chain", {"x": 1}),
                "fan": await start_run(stubs, "fan", {"items": list(range(FAN_OUT_ITEMS))}),
            }
            watchers = {key: Watcher(stubs, run.name) for key, run in runs.items()}
            await wait_mid_flight(stubs, watchers)
            runs["timer"] = await freeze_mid_wait(first, stubs, watchers)
            seen = {key: w.snapshot() for key, w in watchers.items()}
            first.kill()  # SIGKILL: no graceful anything
    finally:
        for watcher in watchers.values():
            await watcher.close()
        first.kill()

    # Mid-flight indeed: nothing had finished, the fan-out was partly done.
    for key, events in seen.items():
        assert not [e for e in events if e.type in FINAL_EVENT_TYPES], key
    assert len(of_type(seen["fan"], E.RUN_EVENT_TYPE_ITEM_SUCCEEDED)) == DONE_BEFORE_KILL
    waiting = of_type(seen["timer"], E.RUN_EVENT_TYPE_STEP_WAITING)[0]
    due = waiting.due_time.ToNanoseconds() / 1e9

    release_file.touch()
    second = start_serving(env=hold_env)
    async with grpc.aio.insecure_channel(second.address) as channel:
        stubs = Stubs.on(channel)
        histories = {key: await collect_events(stubs, run.name) for key, run in runs.items()}
        finals = {key: await get_run(stubs, run.name) for key, run in runs.items()}
    assert second.stop() == 0

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

    slow = step_of(finals["chain"], "slow")
    assert [a.state for a in slow.attempts] == [
        R.ATTEMPT_STATE_INTERRUPTED,
        R.ATTEMPT_STATE_SUCCEEDED,
    ]
    assert plain(finals["chain"].output) == {"last": {"x": 3}}

    each = step_of(finals["fan"], "each")
    assert plain(each.output) == [{"value": i} for i in range(FAN_OUT_ITEMS)]
    assert (each.items_total, each.items_succeeded, each.items_failed) == (FAN_OUT_ITEMS,) * 2 + (
        0,
    )
    interrupted_items = {a.item for a in each.attempts if a.state == R.ATTEMPT_STATE_INTERRUPTED}
    assert len(interrupted_items) == FAN_OUT_CONCURRENCY
    assert plain(finals["fan"].output) == {"after": {"count": FAN_OUT_ITEMS}}

    # The timer kept its due time: one STEP_WAITING, and it ended at that
    # instant (or later, if the restart took longer), not a duration after it.
    pause = step_of(finals["timer"], "pause")
    assert pause.due_time.ToSeconds() == waiting.due_time.ToSeconds() or not pause.HasField(
        "due_time"
    )
    assert len(of_type(histories["timer"], E.RUN_EVENT_TYPE_STEP_WAITING)) == 1
    waited_until = datetime.datetime.fromisoformat(plain(pause.output)["waited_until"])
    assert abs(waited_until.timestamp() - due) < 0.001, (waited_until, iso(due))
    ended = of_type(histories["timer"], E.RUN_EVENT_TYPE_STEP_SUCCEEDED)
    pause_done = next(e for e in ended if e.step_id == "pause").time.ToNanoseconds() / 1e9
    assert pause_done >= due, (iso(pause_done), iso(due))

    assert total_interrupted >= 1 + FAN_OUT_CONCURRENCY
    print(f"\ncrash recovery: {total_interrupted} interrupted attempts, all resumed")


async def test_sigkill_while_waiting_for_approval_then_approvable(
    start_serving: StartServing,
) -> None:
    """No graceful stop here: the store says WAITING_APPROVAL, whatever the
    shutdown path does."""
    spec = {"steps": [{"id": "gate", "approval": {"prompt": "ok?"}}, echo_step("after", "gate")]}
    first = start_serving()
    try:
        async with grpc.aio.insecure_channel(first.address) as channel:
            stubs = Stubs.on(channel)
            await create_workflow(stubs, "gate", spec)
            run = await start_run(stubs, "gate")
            await collect_events(stubs, run.name, limit=3)  # ... APPROVAL_REQUESTED
    finally:
        first.kill()

    second = start_serving()
    async with grpc.aio.insecure_channel(second.address) as channel:
        stubs = Stubs.on(channel)

        async def approved() -> bool:
            """Refused (FAILED_PRECONDITION) while the restarted server is
            still resuming the run."""
            try:
                await resolve_approval(stubs, run.name, "gate")
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                return False
            return True

        await eventually(approved, what="the approval resolved after the restart")
        events = await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
    assert second.stop() == 0
    assert final.state == R.RUN_STATE_SUCCEEDED
    assert sequences(events) == list(range(1, len(events) + 1))
