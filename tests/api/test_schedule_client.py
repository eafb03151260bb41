"""The Python clients' schedule methods (AsyncClient and the blocking Client)
against a served database on a ManualClock: create from plain values, get,
list (paged), pause, resume, trigger, delete, the runs of a schedule, and the
errors they raise (PodiumError with the field, ValueError before sending)."""

from __future__ import annotations

import asyncio

import pytest

from podium.client import AsyncClient, Client, PodiumError
from podium.core.clock import ManualClock
from podium.testing import create_workflow, serving
from podium.v1 import schedule_service_pb2

S = schedule_service_pb2
START = 1_700_000_000.0
ECHO = {"steps": [{"id": "a", "agent": "echo", "input": {"n": "input.n"}}]}


async def test_async_client_round_trip(db_path: str) -> None:
    async with serving(db_path, clock=ManualClock(start=START)) as served:
        await create_workflow(served.stubs, "wf", ECHO)
        async with AsyncClient(served.address) as client:
            made = await client.create_schedule(
                "wf",
                interval_seconds=90,
                input={"n": 3},
                overlap="buffer-one",
                catch_up_window_seconds=600,
                jitter_seconds=5,
                labels={"team": "ops"},
            )
            assert made.name.startswith("schedules/")
            assert made.workflow == "workflows/wf"
            assert made.interval.ToSeconds() == 90
            assert made.overlap_policy == S.OVERLAP_POLICY_BUFFER_ONE
            assert made.catch_up_window.ToSeconds() == 600
            assert made.jitter.ToSeconds() == 5
            assert dict(made.labels) == {"team": "ops"}
            assert made.next_fire_time.ToSeconds() == START + 90
            # A bare id works where a name is expected.
            bare = made.name.removeprefix("schedules/")
            assert (await client.get_schedule(bare)) == made

            cron = await client.create_schedule(
                "workflows/wf", cron="30 6 * * 1-5", time_zone="Europe/Paris", overlap="allow"
            )
            assert cron.cron == "30 6 * * 1-5" and cron.time_zone == "Europe/Paris"
            listed = [s.name async for s in client.list_schedules(page_size=1)]
            assert sorted(listed) == sorted([made.name, cron.name])

            paused = await client.pause_schedule(made.name)
            assert paused.paused
            run = await client.trigger_schedule(made.name)
            assert run.startswith("runs/")
            runs = [r async for r in client.list_runs(schedule=bare)]
            assert [r.name for r in runs] == [run]
            assert runs[0].schedule == made.name
            assert runs[0].nominal_time.ToSeconds() == START
            resumed = await client.resume_schedule(made.name)
            assert not resumed.paused

            await client.delete_schedule(made.name)
            with pytest.raises(PodiumError) as info:
                await client.get_schedule(made.name)
            assert info.value.code_name == "NOT_FOUND"
            # The run it started stays.
            assert (await client.get_run(run)).schedule == made.name


async def test_async_client_errors(db_path: str) -> None:
    async with serving(db_path, clock=ManualClock(start=START)) as served:
        await create_workflow(served.stubs, "wf", ECHO)
        async with AsyncClient(served.address) as client:
            with pytest.raises(PodiumError) as info:
                await client.create_schedule("wf", cron="every day")
            assert info.value.code_name == "INVALID_ARGUMENT"
            assert "schedule.cron" in info.value.detail
            with pytest.raises(PodiumError) as info:
                await client.create_schedule("wf", interval_seconds=60, time_zone="Mars/Base")
            assert "schedule.time_zone" in info.value.detail
            with pytest.raises(PodiumError) as info:
                await client.create_schedule("missing", interval_seconds=60)
            assert "schedule.workflow" in info.value.detail
            # Refused before anything is sent.
            with pytest.raises(ValueError, match="overlap policy"):
                await client.create_schedule("wf", interval_seconds=60, overlap="sometimes")
            with pytest.raises(ValueError, match="schedules/"):
                await client.get_schedule("runs/abc")
            with pytest.raises(ValueError, match="interval"):
                await client.create_schedule("wf", interval_seconds=float("nan"))
            with pytest.raises(PodiumError) as info:
                await client.trigger_schedule("0" * 32)
            assert info.value.code_name == "NOT_FOUND"
            with pytest.raises(PodiumError) as info:
                await client.pause_schedule("not-an-id")
            assert info.value.code_name == "INVALID_ARGUMENT"
            assert [s async for s in client.list_schedules()] == []


async def test_blocking_client_round_trip(db_path: str) -> None:
    async with serving(db_path, clock=ManualClock(start=START)) as served:
        await create_workflow(served.stubs, "wf", ECHO)

        def use() -> None:
            with Client(served.address) as client:
                made = client.create_schedule("wf", interval_seconds=60, overlap="skip")
                assert made.overlap_policy == S.OVERLAP_POLICY_SKIP
                assert client.get_schedule(made.name).name == made.name
                assert [s.name for s in client.list_schedules()] == [made.name]
                assert client.pause_schedule(made.name).paused
                run = client.trigger_schedule(made.name)
                assert [r.name for r in client.list_runs(schedule=made.name)] == [run]
                assert not client.resume_schedule(made.name).paused
                client.delete_schedule(made.name)
                with pytest.raises(PodiumError) as info:
                    client.delete_schedule(made.name)
                assert info.value.code_name == "NOT_FOUND"

        await asyncio.to_thread(use)
