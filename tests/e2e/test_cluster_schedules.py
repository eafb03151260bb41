"""Schedules on two `podium serve --cluster` processes sharing one database
(SQLite and PostgreSQL, conftest's `cluster`), on short real intervals:

- both servers race for every nominal time, one is killed -9 mid-stream: each
  nominal time starts exactly one run, none is lost;
- a fire claimed by a server that cannot start it (its max_input_bytes limit
  is below the schedule's input: the state a kill -9 between the claim and
  the start leaves) is left alone by the other server while its claimer
  lives, and started once by the survivor after the claimer is killed -9;
- such a claim, seen by the next server only after the catch-up window has
  passed, is missed (counted), not started: the same rule as a missed fire.
"""

from __future__ import annotations

import asyncio

from google.protobuf import timestamp_pb2

from podium.client import AsyncClient
from podium.testing import Cluster, eventually
from podium.v1 import run_pb2

INTERVAL = 1.0
ECHO = {"workflow_id": "tick", "spec": {"steps": [{"id": "a", "agent": "echo"}]}}
# An input over the claimer's limit (below): only the other server can start it.
BIG_INPUT = {"pad": "x" * 200}
SMALL_LIMIT = ("--limit", "max_input_bytes=64")


def seconds(timestamp: timestamp_pb2.Timestamp) -> float:
    return round(timestamp.ToNanoseconds() / 1e9, 3)


async def runs_of(client: AsyncClient, schedule: str) -> list[run_pb2.Run]:
    runs = [run async for run in client.list_runs(schedule=schedule)]
    return sorted(runs, key=lambda r: r.nominal_time.ToNanoseconds())


def nominal_times(runs: list[run_pb2.Run]) -> list[float]:
    return [seconds(r.nominal_time) for r in runs]


async def test_each_nominal_time_starts_once_across_servers_and_a_kill(
    cluster: Cluster,
) -> None:
    victim = cluster.start("victim")
    survivor = cluster.start("survivor")
    async with (
        AsyncClient(victim.address) as on_victim,
        AsyncClient(survivor.address) as on_survivor,
    ):
        await on_victim.apply_workflow(ECHO)
        schedule = await on_victim.create_schedule(
            "tick", interval_seconds=INTERVAL, overlap="allow", catch_up_window_seconds=60
        )
        first = seconds(schedule.next_fire_time)

        async def runs_reach(count: int) -> None:
            async def enough() -> bool:
                return len(await runs_of(on_survivor, schedule.name)) >= count

            await eventually(enough, what=f"{count} scheduled runs")

        await runs_reach(5)
        victim.kill()
        await runs_reach(10)
        paused = await on_survivor.pause_schedule(schedule.name)
        last = round(seconds(paused.next_fire_time) - INTERVAL, 3)
        expected = [round(first + i * INTERVAL, 3) for i in range(round(last - first) + 1)]

        async def all_started() -> bool:
            return len(await runs_of(on_survivor, schedule.name)) >= len(expected)

        # A fire the victim claimed and had not started yet is the survivor's once
        # the victim's lease has expired.
        await eventually(all_started, what="every claimed nominal time started")
        runs = await runs_of(on_survivor, schedule.name)
        got = await on_survivor.get_schedule(schedule.name)
    assert nominal_times(runs) == expected
    assert got.missed_fires == 0


async def claimed_unstarted(cluster: Cluster, catch_up: float) -> tuple[str, list[float]]:
    """A schedule whose fires the claimer (started alone, with the small input
    limit) claimed and cannot start; paused after its first claim. Its name and
    the nominal times claimed."""
    claimer = cluster.servers[0]
    async with AsyncClient(claimer.address) as client:
        await client.apply_workflow(ECHO)
        schedule = await client.create_schedule(
            "tick",
            interval_seconds=INTERVAL,
            input=BIG_INPUT,
            overlap="allow",
            catch_up_window_seconds=catch_up,
        )
        first = seconds(schedule.next_fire_time)

        async def claimed() -> bool:
            got = await client.get_schedule(schedule.name)
            return seconds(got.next_fire_time) > first

        await eventually(claimed, what="the first fire claimed")
        paused = await client.pause_schedule(schedule.name)
        assert await runs_of(client, schedule.name) == []
    last = seconds(paused.next_fire_time) - INTERVAL
    return schedule.name, [round(first + i * INTERVAL, 3) for i in range(round(last - first) + 1)]


async def test_a_fire_claimed_by_a_killed_server_is_started_once_by_the_survivor(
    cluster: Cluster,
) -> None:
    claimer = cluster.start("claimer", args=SMALL_LIMIT)
    name, claimed = await claimed_unstarted(cluster, catch_up=60)
    survivor = cluster.start("survivor")
    async with AsyncClient(survivor.address) as client:
        # Several of the survivor's ticks: the live claimer's fires are not its own.
        await asyncio.sleep(3 * INTERVAL)
        assert await runs_of(client, name) == []
        claimer.kill()

        async def started() -> bool:
            return len(await runs_of(client, name)) >= len(claimed)

        await eventually(started, what="the dead claimer's fires started by the survivor")
        await asyncio.sleep(3 * INTERVAL)  # ticks that would start a fire twice
        runs = await runs_of(client, name)
        got = await client.get_schedule(name)
    assert nominal_times(runs) == claimed
    assert got.missed_fires == 0
    assert all(r.input["pad"] == BIG_INPUT["pad"] for r in runs)


async def test_a_claim_older_than_the_catch_up_window_is_missed_by_the_next_server(
    cluster: Cluster,
) -> None:
    catch_up = 3.0
    claimer = cluster.start("claimer", args=SMALL_LIMIT)
    name, claimed = await claimed_unstarted(cluster, catch_up=catch_up)
    claimer.kill()
    # Beyond the window (plus the scheduler's two-second grace) before any
    # server sees the claim again.
    await asyncio.sleep(catch_up + 2 + 2 * INTERVAL)
    survivor = cluster.start("next")
    async with AsyncClient(survivor.address) as client:

        async def missed() -> bool:
            got = await client.get_schedule(name)
            return got.missed_fires >= len(claimed)

        await eventually(missed, what="the claimed fires counted as missed")
        await asyncio.sleep(3 * INTERVAL)
        runs = await runs_of(client, name)
        got = await client.get_schedule(name)
    assert runs == []
    assert got.missed_fires == len(claimed)
    assert got.paused
