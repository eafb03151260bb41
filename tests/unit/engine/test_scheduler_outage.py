"""The schedule loop on a real PostgreSQL store whose server is killed, then
started again: while the database is gone every tick fails, and the log gets
the first failure, one line per minute of the loop's clock (a ManualClock)
with how many were not logged, and one line when the database is back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from podium.core.clock import ManualClock
from podium.engine.schedules import Scheduler
from podium.store.postgres.schedule_store import PostgresScheduleStore
from podium.store.postgres.store import PostgresStore
from podium.testing import eventually
from podium.testing.postgres import PodiumDatabases, PostgresForTests


@pytest.fixture
def private_postgres() -> Iterator[PostgresForTests]:
    """A PostgreSQL server of this test's own: it gets killed."""
    with PostgresForTests.temporary() as server:
        yield server


async def never(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("no schedule exists: nothing is started or looked up")


def scheduler_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "podium.schedules"]


async def test_a_lost_database_is_logged_once_then_once_a_minute_then_when_back(
    private_postgres: PostgresForTests, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="podium.schedules")
    caplog.set_level(logging.INFO, logger="podium.store")
    url = await PodiumDatabases(private_postgres).create()
    store = PostgresStore(url)
    await store.open()
    clock = ManualClock(0.0)
    scheduler = Scheduler(PostgresScheduleStore(store), clock, never, never, never, never)
    scheduler.start()
    try:
        await eventually(lambda: scheduler.ticks >= 1, what="a first tick")
        await asyncio.to_thread(private_postgres.kill)

        async def tick_on_the_clock() -> None:
            # A failing tick sleeps on the clock (retried every second).
            await eventually(lambda: clock.sleepers == 1, what="the loop sleeping on its clock")
            ticks = scheduler.ticks
            clock.advance(1)
            await eventually(lambda: scheduler.ticks > ticks, what="the next tick")

        await tick_on_the_clock()  # the first tick that failed slept on the clock
        assert scheduler_lines(caplog) == [
            "scheduler tick failed (retried; while it fails, logged once per 60s)"
        ]
        for _ in range(130):
            await tick_on_the_clock()
        # Nor does the store add a line per tick (its `refused:` line is a request's).
        assert not [r for r in caplog.records if r.getMessage().startswith("refused:")]
        still = scheduler_lines(caplog)[1:]
        assert len(still) == 2, still
        assert all(
            line.startswith("scheduler tick still failing after")
            and "(59 failures not logged since the last line)" in line
            for line in still
        ), still

        await asyncio.to_thread(private_postgres.restart)

        # Back: the next ticks succeed (the pool reconnects); one line says so.
        def back_again() -> bool:
            if any("works again" in line for line in scheduler_lines(caplog)):
                return True
            if clock.sleepers:  # still failing: on to the next tick
                clock.advance(1)
            return False

        await eventually(back_again, what="a tick that reached the database again")
        back = [line for line in scheduler_lines(caplog) if "works again" in line]
        assert len(back) == 1 and back[0].startswith("scheduler tick works again after"), back
    finally:
        await scheduler.stop()
        await store.close()
