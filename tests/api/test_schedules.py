"""Schedules through gRPC on a ManualClock: interval and cron fires, overlap
policies with a run that stays running (an approval), the catch-up window
across a restart, a claim left by a server that died before starting its run,
pause/resume, trigger now, and bad input."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2

from podium.core.clock import ManualClock
from podium.core.schedule_model import FireOutcome, FireRecord
from podium.server.app import PodiumServer
from podium.store.sqlite.schedule_store import SqliteScheduleStore
from podium.store.sqlite.store import SqliteStore
from podium.testing import Stubs, create_workflow, eventually, serving
from podium.v1 import execution_service_pb2, run_pb2, schedule_service_pb2, workflow_service_pb2
from podium.v1 import schedule_service_pb2_grpc as sched_grpc

S = schedule_service_pb2
# 2023-11-14 22:13:20 UTC.
START = 1_700_000_000.0

ECHO = {"steps": [{"id": "a", "agent": "echo", "input": {"n": "input.n"}}]}
# Stays running until cancelled: what a long run looks like to the overlap policy.
GATE = {"steps": [{"id": "gate", "approval": {"prompt": "go?"}}]}


def secs(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


class Clock:
    """The ManualClock, advanced only while the scheduler sleeps, each advance
    followed by the scheduler's tick (no timing to guess)."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.server: PodiumServer | None = None

    async def advance(self, seconds: float) -> None:
        assert self.server is not None and self.server.scheduler is not None
        scheduler = self.server.scheduler
        await eventually(lambda: scheduler.sleeping, what="the scheduler asleep")
        before = scheduler.ticks
        self.clock.advance(seconds)
        await eventually(
            lambda: scheduler.ticks > before and scheduler.sleeping, what="a scheduler tick"
        )


@asynccontextmanager
async def served(db_path: str, clock: Clock) -> AsyncIterator[Stubs]:
    async with serving(db_path, clock=clock.clock) as (server, stubs):
        clock.server = server
        yield stubs


@pytest.fixture
async def manual(db_path: str) -> AsyncIterator[tuple[Clock, Stubs]]:
    clock = Clock(ManualClock(start=START))
    async with served(db_path, clock) as stubs:
        yield clock, stubs


def schedules(stubs: Stubs) -> sched_grpc.ScheduleServiceAsyncStub:
    return sched_grpc.ScheduleServiceStub(stubs.channel)


async def create(stubs: Stubs, **fields: Any) -> S.Schedule:
    fields.setdefault("workflow", "workflows/wf")
    response = await schedules(stubs).CreateSchedule(
        S.CreateScheduleRequest(schedule=S.Schedule(**fields))
    )
    return response.schedule


async def runs_of(stubs: Stubs, schedule: str) -> list[run_pb2.Run]:
    response = await stubs.executions.ListRuns(
        execution_service_pb2.ListRunsRequest(schedule=schedule, page_size=1000)
    )
    return sorted(response.runs, key=lambda r: r.nominal_time.ToSeconds())


async def count_reaches(stubs: Stubs, schedule: str, count: int) -> list[run_pb2.Run]:
    async def enough() -> bool:
        return len(await runs_of(stubs, schedule)) >= count

    await eventually(enough, what=f"{count} run(s) of {schedule}")
    return await runs_of(stubs, schedule)


async def test_interval_fires_record_schedule_and_nominal_time(
    manual: tuple[Clock, Stubs],
) -> None:
    clock, stubs = manual
    await create_workflow(stubs, "wf", ECHO)
    schedule = await create(
        stubs, interval=secs(60), input={"n": 7}, overlap_policy=S.OVERLAP_POLICY_ALLOW
    )
    assert schedule.next_fire_time.ToSeconds() == START + 60
    await clock.advance(60)
    runs = await count_reaches(stubs, schedule.name, 1)
    await clock.advance(60)
    runs = await count_reaches(stubs, schedule.name, 2)
    assert [r.nominal_time.ToSeconds() for r in runs] == [START + 60, START + 120]
    assert all(r.schedule == schedule.name for r in runs)
    # Only this schedule's runs are listed under it.
    other = await create(stubs, interval=secs(3600))
    assert await runs_of(stubs, other.name) == []


async def test_cron_fires_at_wall_time_of_its_zone(manual: tuple[Clock, Stubs]) -> None:
    clock, stubs = manual
    await create_workflow(stubs, "wf", ECHO)
    # 23:13:20 in Berlin (CET); the next "0 0 * * *" is midnight CET = 23:00 UTC.
    schedule = await create(stubs, cron="0 0 * * *", time_zone="Europe/Berlin")
    assert schedule.next_fire_time.ToSeconds() == START + 46 * 60 + 40
    await clock.advance(46 * 60 + 40)
    runs = await count_reaches(stubs, schedule.name, 1)
    assert runs[0].nominal_time.ToJsonString() == "2023-11-14T23:00:00Z"


@pytest.mark.parametrize(
    ("policy", "started_while_running", "started_after"),
    [
        (S.OVERLAP_POLICY_SKIP, 1, 1),
        (S.OVERLAP_POLICY_BUFFER_ONE, 1, 2),
        (S.OVERLAP_POLICY_ALLOW, 3, 3),
    ],
)
async def test_overlap_policies_with_a_long_run(
    manual: tuple[Clock, Stubs],
    policy: int,
    started_while_running: int,
    started_after: int,
) -> None:
    clock, stubs = manual
    await create_workflow(stubs, "wf", GATE)
    schedule = await create(stubs, interval=secs(60), overlap_policy=policy)
    for n in range(1, 4):
        await clock.advance(60)
        await count_reaches(stubs, schedule.name, min(n, started_while_running))
    got = await schedules(stubs).GetSchedule(S.GetScheduleRequest(name=schedule.name))
    # The third nominal time is claimed once the scheduler has seen it.
    assert got.schedule.next_fire_time.ToSeconds() == START + 240
    runs = await runs_of(stubs, schedule.name)
    assert len(runs) == started_while_running
    # The first run ends: a buffered fire starts, nothing else does.
    await stubs.executions.CancelRun(execution_service_pb2.CancelRunRequest(name=runs[0].name))
    await clock.advance(1)
    runs = await count_reaches(stubs, schedule.name, started_after)
    await clock.advance(1)
    assert len(await runs_of(stubs, schedule.name)) == started_after
    if policy == S.OVERLAP_POLICY_BUFFER_ONE:
        # The buffered one is the second nominal time (the third was skipped).
        assert runs[1].nominal_time.ToSeconds() == START + 120


async def test_catch_up_window_across_a_restart(db_path: str) -> None:
    clock = Clock(ManualClock(start=START))
    async with served(db_path, clock) as stubs:
        await create_workflow(stubs, "wf", ECHO)
        schedule = await create(
            stubs,
            interval=secs(60),
            catch_up_window=secs(150),
            overlap_policy=S.OVERLAP_POLICY_ALLOW,
        )
    # Down for ten nominal times.
    clock.clock.advance(600)
    async with served(db_path, clock) as stubs:
        runs = await count_reaches(stubs, schedule.name, 3)
        # Nominal times 480, 540 and 600 are within 150 s of now (600); the
        # seven before are missed, recorded, and never run.
        assert [r.nominal_time.ToSeconds() - START for r in runs] == [480, 540, 600]
        got = await schedules(stubs).GetSchedule(S.GetScheduleRequest(name=schedule.name))
        assert got.schedule.missed_fires == 7
        assert got.schedule.next_fire_time.ToSeconds() == START + 660


async def test_a_claim_whose_server_died_starts_once_on_restart(db_path: str) -> None:
    clock = Clock(ManualClock(start=START))
    async with served(db_path, clock) as stubs:
        await create_workflow(stubs, "wf", ECHO)
        schedule = await create(stubs, interval=secs(60), catch_up_window=secs(300))
    schedule_id = schedule.name.split("/")[1]
    clock.clock.advance(60)
    # What a server killed right after its claim leaves: next_fire moved on,
    # the nominal time recorded as CLAIMED, no run.
    store = SqliteStore(db_path)
    await store.open()
    try:
        claimed = FireRecord(schedule_id, START + 60, FireOutcome.CLAIMED, "", START + 60)
        won = await SqliteScheduleStore(store).claim_fires(
            schedule_id, START + 60, START + 120, [claimed]
        )
        assert won
    finally:
        await store.close()
    async with served(db_path, clock) as stubs:
        runs = await count_reaches(stubs, schedule.name, 1)
        assert runs[0].nominal_time.ToSeconds() == START + 60
        await clock.advance(1)
        await clock.advance(1)
        assert len(await runs_of(stubs, schedule.name)) == 1


async def test_pause_resume_and_trigger_now(manual: tuple[Clock, Stubs]) -> None:
    clock, stubs = manual
    await create_workflow(stubs, "wf", ECHO)
    schedule = await create(stubs, interval=secs(60))
    api = schedules(stubs)
    paused = await api.PauseSchedule(S.PauseScheduleRequest(name=schedule.name))
    assert paused.schedule.paused
    await clock.advance(180)
    await clock.advance(1)
    assert await runs_of(stubs, schedule.name) == []
    # Trigger now works on a paused schedule; its nominal time is now.
    triggered = await api.TriggerSchedule(S.TriggerScheduleRequest(name=schedule.name))
    runs = await count_reaches(stubs, schedule.name, 1)
    assert runs[0].name == triggered.run
    assert runs[0].nominal_time.ToSeconds() == START + 181
    resumed = await api.ResumeSchedule(S.ResumeScheduleRequest(name=schedule.name))
    assert not resumed.schedule.paused
    # From the next nominal time after now: the ones passed while paused are not fired.
    assert resumed.schedule.next_fire_time.ToSeconds() == START + 240
    await clock.advance(59)
    runs = await count_reaches(stubs, schedule.name, 2)
    assert runs[1].nominal_time.ToSeconds() == START + 240
    listed = await api.ListSchedules(S.ListSchedulesRequest())
    assert [s.name for s in listed.schedules] == [schedule.name]
    await api.DeleteSchedule(S.DeleteScheduleRequest(name=schedule.name))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.GetSchedule(S.GetScheduleRequest(name=schedule.name))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    # Its runs stay.
    assert len(await runs_of(stubs, schedule.name)) == 2


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cron": "every day"}, "schedule.cron"),
        ({"cron": "61 * * * *"}, "schedule.cron"),
        ({"cron": "0 0 30 2 *"}, "schedule.cron"),
        ({}, "schedule.cron"),
        ({"cron": "* * * * *", "time_zone": "Mars/Olympus"}, "schedule.time_zone"),
        ({"cron": "* * * * *", "time_zone": "../../etc/passwd"}, "schedule.time_zone"),
        ({"interval": secs(0)}, "schedule.interval"),
        ({"interval": secs(-5)}, "schedule.interval"),
        ({"interval": secs(60), "workflow": "workflows/nope"}, "schedule.workflow"),
        ({"interval": secs(60), "workflow": "nope"}, "schedule.workflow"),
        ({"interval": secs(60), "catch_up_window": secs(-1)}, "schedule.catch_up_window"),
        ({"interval": secs(60), "jitter": secs(-1)}, "schedule.jitter"),
        ({"interval": secs(60), "overlap_policy": 42}, "schedule.overlap_policy"),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(
    manual: tuple[Clock, Stubs], fields: dict[str, Any], field: str
) -> None:
    _, stubs = manual
    await create_workflow(stubs, "wf", ECHO)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(stubs, **fields)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (info.value.details() or "")


async def test_jitter_delays_a_fire_within_its_bound(manual: tuple[Clock, Stubs]) -> None:
    clock, stubs = manual
    await create_workflow(stubs, "wf", ECHO)
    schedule = await create(stubs, interval=secs(600), jitter=secs(30), catch_up_window=secs(60))
    await clock.advance(600)
    await clock.advance(1)
    await clock.advance(30)
    runs = await count_reaches(stubs, schedule.name, 1)
    assert runs[0].nominal_time.ToSeconds() == START + 600
    assert START + 600 <= runs[0].create_time.ToSeconds() <= START + 631


async def put_fire(db_path: str, fire: FireRecord) -> None:
    """Writes a fire as a server killed mid-way would have left it (no server runs)."""
    store = SqliteStore(db_path)
    await store.open()
    try:
        await SqliteScheduleStore(store).set_fire(fire)
    finally:
        await store.close()


async def fires_of(db_path: str, schedule: str) -> list[FireRecord]:
    store = SqliteStore(db_path)
    await store.open()
    try:
        return await SqliteScheduleStore(store).fires_of(schedule.split("/")[1])
    finally:
        await store.close()


async def test_a_claim_left_older_than_the_catch_up_window_is_missed(db_path: str) -> None:
    clock = Clock(ManualClock(start=START))
    async with served(db_path, clock) as stubs:
        await create_workflow(stubs, "wf", ECHO)
        schedule = await create(stubs, interval=secs(60), catch_up_window=secs(300))
    schedule_id = schedule.name.split("/")[1]
    clock.clock.advance(60)
    # Claimed at START + 60 by a server killed before it started the run.
    store = SqliteStore(db_path)
    await store.open()
    try:
        claimed = FireRecord(schedule_id, START + 60, FireOutcome.CLAIMED, "", START + 60)
        assert await SqliteScheduleStore(store).claim_fires(
            schedule_id, START + 60, START + 120, [claimed]
        )
    finally:
        await store.close()
    # Down until START + 460: the claimed fire is 400 s old, beyond the window.
    clock.clock.advance(400)
    async with served(db_path, clock) as stubs:
        runs = await count_reaches(stubs, schedule.name, 1)
        await clock.advance(1)
        runs = await runs_of(stubs, schedule.name)
        # 60 (claimed, never started) and 120 are older than 300 s (plus the
        # grace): missed; of 180..420 the first starts, the others are skipped
        # (the default overlap policy; the echo run is still running).
        assert [r.nominal_time.ToSeconds() - START for r in runs] == [180]
        got = await schedules(stubs).GetSchedule(S.GetScheduleRequest(name=schedule.name))
        assert got.schedule.missed_fires == 2
    outcomes = {f.nominal_time - START: f.outcome for f in await fires_of(db_path, schedule.name)}
    assert outcomes[60] == FireOutcome.MISSED
    assert outcomes[120] == FireOutcome.MISSED


async def test_a_claim_whose_run_had_started_is_not_missed_nor_started_again(
    db_path: str,
) -> None:
    clock = Clock(ManualClock(start=START))
    async with served(db_path, clock) as stubs:
        await create_workflow(stubs, "wf", GATE)
        schedule = await create(stubs, interval=secs(3600), catch_up_window=secs(60))
        await clock.advance(3600)
        [run] = await count_reaches(stubs, schedule.name, 1)
    # The server was killed after starting the run, before recording it: the
    # fire still says CLAIMED.
    await put_fire(
        db_path, FireRecord(schedule.name.split("/")[1], START + 3600, FireOutcome.CLAIMED, "", 0)
    )
    clock.clock.advance(600)  # beyond the catch-up window
    async with served(db_path, clock) as stubs:
        await clock.advance(1)
        await clock.advance(1)
        runs = await runs_of(stubs, schedule.name)
        assert [r.name for r in runs] == [run.name]
        got = await schedules(stubs).GetSchedule(S.GetScheduleRequest(name=schedule.name))
        assert got.schedule.missed_fires == 0
    [fire] = await fires_of(db_path, schedule.name)
    assert (fire.outcome, fire.run_id) == (FireOutcome.STARTED, run.name.split("/")[1])


async def test_a_fire_that_cannot_start_holds_up_no_other_and_is_missed_after_its_window(
    manual: tuple[Clock, Stubs],
) -> None:
    clock, stubs = manual
    await create_workflow(stubs, "wf", ECHO)
    await create_workflow(stubs, "gone", ECHO)
    doomed = await create(
        stubs, workflow="workflows/gone", interval=secs(60), catch_up_window=secs(30)
    )
    healthy = await create(stubs, interval=secs(60))
    await stubs.workflows.DeleteWorkflow(
        workflow_service_pb2.DeleteWorkflowRequest(name="workflows/gone")
    )
    await clock.advance(60)
    await count_reaches(stubs, healthy.name, 1)
    assert await runs_of(stubs, doomed.name) == []
    got = await schedules(stubs).GetSchedule(S.GetScheduleRequest(name=doomed.name))
    assert got.schedule.missed_fires == 0  # retried while within its window
    await clock.advance(40)
    got = await schedules(stubs).GetSchedule(S.GetScheduleRequest(name=doomed.name))
    assert got.schedule.missed_fires == 1
    assert await runs_of(stubs, doomed.name) == []


async def test_a_fire_that_keeps_failing_is_logged_once_not_every_tick(
    manual: tuple[Clock, Stubs], caplog: pytest.LogCaptureFixture
) -> None:
    clock, stubs = manual
    await create_workflow(stubs, "gone", ECHO)
    doomed = await create(
        stubs, workflow="workflows/gone", interval=secs(60), catch_up_window=secs(30)
    )
    await stubs.workflows.DeleteWorkflow(
        workflow_service_pb2.DeleteWorkflowRequest(name="workflows/gone")
    )
    schedule_id = doomed.name.removeprefix("schedules/")
    with caplog.at_level(logging.INFO, logger="podium.schedules"):
        await clock.advance(60)
        for _ in range(5):  # five more ticks, each retrying the fire and failing
            await clock.advance(1)
        failed = [r for r in caplog.records if schedule_id in r.getMessage()]
        # The first failure, with its traceback; the retries within the minute, silent.
        assert [r.levelno for r in failed] == [logging.ERROR]
        assert failed[0].exc_info is not None
        await clock.advance(40)  # past its catch-up window: missed, and the retries end
    lines = [r.getMessage() for r in caplog.records if schedule_id in r.getMessage()]
    assert "missed" in lines[-2]
    assert "works again" in lines[-1] and "6 failures" in lines[-1]
