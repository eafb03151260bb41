"""The ScheduleStore port (podium.engine.schedule_store) against every backend of
conftest.BACKENDS: schedules, the claim of a nominal time, and fires' outcomes."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from podium.core.schedule_model import FireOutcome, FireRecord, ScheduleRecord
from podium.engine.schedule_store import ScheduleStore

from .conftest import StoreFactory
from .records import T0


def schedule(schedule_id: str = "s1", **changes: object) -> ScheduleRecord:
    record = ScheduleRecord(
        schedule_id=schedule_id,
        workflow_id="wf",
        workflow_version=0,
        cron="*/5 * * * *",
        interval=0.0,
        time_zone="Europe/Berlin",
        input={"n": [1, "two"]},
        overlap="BUFFER_ONE",
        catch_up_window=600.0,
        jitter=2.5,
        create_time=T0,
        next_fire=T0 + 300,
        labels={"team": "a"},
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


async def test_a_schedule_is_read_back_listed_and_deleted(schedule_store: ScheduleStore) -> None:
    await schedule_store.put_schedule(schedule("s2"))
    await schedule_store.put_schedule(schedule("s1"))
    await schedule_store.put_schedule(schedule("s3", tenant="other"))
    assert await schedule_store.get_schedule("s1") == schedule("s1")
    assert await schedule_store.get_schedule("s3") is None
    assert await schedule_store.schedule_by_id("s3") == schedule("s3", tenant="other")
    assert await schedule_store.get_schedule("s3", tenant="other") == schedule("s3", tenant="other")
    assert [s.schedule_id for s in await schedule_store.list_schedules(10)] == ["s1", "s2"]
    assert [s.schedule_id for s in await schedule_store.list_schedules(10, "s1")] == ["s2"]
    await schedule_store.put_schedule(schedule("s1", paused=True, next_fire=None))
    paused = await schedule_store.get_schedule("s1")
    assert paused is not None and paused.paused and paused.next_fire is None
    assert await schedule_store.delete_schedule("s1")
    assert not await schedule_store.delete_schedule("s1")
    assert await schedule_store.get_schedule("s1") is None


async def test_due_schedules_are_unpaused_ones_whose_next_fire_has_come(
    schedule_store: ScheduleStore,
) -> None:
    await schedule_store.put_schedule(schedule("late", next_fire=T0 + 50))
    await schedule_store.put_schedule(schedule("soon", next_fire=T0 + 10))
    await schedule_store.put_schedule(schedule("future", next_fire=T0 + 500))
    await schedule_store.put_schedule(schedule("paused", next_fire=T0, paused=True))
    await schedule_store.put_schedule(schedule("done", next_fire=None))
    await schedule_store.put_schedule(schedule("tenant", next_fire=T0 + 20, tenant="b"))
    due = await schedule_store.due_schedules(T0 + 100)
    assert [s.schedule_id for s in due] == ["soon", "tenant", "late"]


async def test_one_claim_of_a_nominal_time_wins(schedule_store: ScheduleStore) -> None:
    await schedule_store.put_schedule(schedule("s1", next_fire=T0 + 300))
    fire = FireRecord("s1", T0 + 300, FireOutcome.CLAIMED, "", T0 + 301)
    results = await asyncio.gather(
        *(schedule_store.claim_fires("s1", T0 + 300, T0 + 600, [fire]) for _ in range(5))
    )
    assert sorted(results) == [False, False, False, False, True]
    after = await schedule_store.get_schedule("s1")
    assert after is not None and after.next_fire == T0 + 600
    assert await schedule_store.open_fires() == [fire]
    # A stale claimer (it read next_fire before the winner moved it) loses.
    assert not await schedule_store.claim_fires("s1", T0 + 300, T0 + 600, [fire])
    # A paused schedule is not claimed.
    await schedule_store.put_schedule(schedule("s1", next_fire=T0 + 600, paused=True))
    assert not await schedule_store.claim_fires("s1", T0 + 600, T0 + 900, [])


async def test_fires_keep_their_outcomes(schedule_store: ScheduleStore) -> None:
    await schedule_store.put_schedule(schedule("s1", next_fire=T0))
    missed = FireRecord("s1", T0 - 600, FireOutcome.MISSED, "", T0 + 1)
    claimed = FireRecord("s1", T0, FireOutcome.CLAIMED, "", T0 + 1)
    assert await schedule_store.claim_fires("s1", T0, T0 + 300, [missed, claimed])
    started = dataclasses.replace(claimed, outcome=FireOutcome.STARTED, run_id="r1", time=T0 + 2)
    await schedule_store.set_fire(started)
    assert await schedule_store.fires_of("s1") == [missed, started]
    assert await schedule_store.fires_of("s1", (FireOutcome.MISSED,)) == [missed]
    assert await schedule_store.open_fires() == []
    await schedule_store.delete_schedule("s1")
    assert await schedule_store.fires_of("s1") == []


async def test_claims_from_two_stores_on_one_database_win_once(
    backend: StoreFactory, tmp_path: Path
) -> None:
    async with backend(tmp_path) as first:
        await first.schedules.put_schedule(schedule("s1", next_fire=T0))
        if not first.shared:
            return  # a private in-memory database has no second server
        async with backend(tmp_path) as second:
            fire = FireRecord("s1", T0, FireOutcome.CLAIMED, "", T0)
            won = await asyncio.gather(
                first.schedules.claim_fires("s1", T0, T0 + 300, [fire]),
                second.schedules.claim_fires("s1", T0, T0 + 300, [fire]),
            )
            assert sorted(won) == [False, True]
            assert await second.schedules.open_fires() == [fire]


async def test_a_fire_keeps_its_claimer_and_is_taken_over_once(
    schedule_store: ScheduleStore,
) -> None:
    await schedule_store.put_schedule(schedule("s1", next_fire=T0))
    fire = FireRecord("s1", T0, FireOutcome.CLAIMED, "", T0, claimer="dead")
    assert await schedule_store.claim_fires("s1", T0, T0 + 300, [fire])
    assert await schedule_store.open_fires() == [fire]
    # Two survivors try: one takes it.
    taken = await asyncio.gather(
        schedule_store.take_fire(fire, "b"), schedule_store.take_fire(fire, "c")
    )
    assert sorted(taken) == [False, True]
    [adopted] = await schedule_store.open_fires()
    assert adopted.claimer in ("b", "c")
    # A stale view (the claimer or the outcome moved on) takes nothing.
    assert not await schedule_store.take_fire(fire, "d")
    started = dataclasses.replace(adopted, outcome=FireOutcome.STARTED, run_id="r1")
    await schedule_store.set_fire(started)
    assert not await schedule_store.take_fire(adopted, "d")
    assert await schedule_store.fires_of("s1") == [started]
