"""Governance across a kill -9 of a real `podium serve`, checked against
what really happened, as the `faults` test plugin (site/podium_e2e_faults.py)
logs it in files outside Podium's database: the calls the provider received
and the agent executions.

- a run's max_cost holds across the crash, on the provider's bill: calls in
  flight at the crash are charged their worst case at restart (with an event
  that says so), every call the provider received is charged exactly once,
  and Run.cost is the sum of the run's LLM_CALL costs;
- a rate quota admits no more than rate + burst over any window, restart
  included;
- every execution of an agent has a durable attempt row.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest

from podium.testing import (
    FINAL_EVENT_TYPES,
    ServerExited,
    ServerProcess,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    eventually,
    get_run,
    of_type,
    start_run,
)
from podium.testing.values import money_nanos
from podium.testing.waiting import HANG_TIMEOUT
from podium.v1 import common_pb2, event_pb2, progress_service_pb2

E = event_pb2
StartServing = Callable[..., ServerProcess]

SITE = Path(__file__).resolve().parent / "site"
# What one call to `counted` may cost at worst: "count me" is 2 input tokens
# by the gate's estimate, plus max_tokens 10, at a dollar a token.
WORST_CASE = Decimal(12)
NANOS = 10**9


@pytest.fixture
def faults_env() -> dict[str, str]:
    pythonpath = os.pathsep.join(filter(None, [str(SITE), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": pythonpath}


def fan_out(items: int, concurrency: int, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "steps": [
            echo_step("plan", input={"items": "input.items"}),
            {
                "id": "each",
                "agent": "logged",
                "dependsOn": ["plan"],
                "forEach": {"items": "steps.plan.output.items", "maxConcurrency": concurrency},
                "input": {"i": "item"},
                "config": config,
            },
        ]
    }


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def money(amount: Decimal) -> common_pb2.Money:
    units = int(amount)
    return common_pb2.Money(currency_code="USD", units=units, nanos=int((amount - units) * NANOS))


IN_FLIGHT = 8
MAX_COST = 12 * WORST_CASE


async def test_max_cost_and_run_cost_hold_across_a_kill(
    start_serving: StartServing, faults_env: dict[str, str], tmp_path: Path
) -> None:
    calls, release = tmp_path / "calls", tmp_path / "release"
    config = {
        "log": str(tmp_path / "executions"),
        "llm": {"calls": str(calls), "hold_until": str(release)},
    }
    first = start_serving(env=faults_env)
    try:
        async with grpc.aio.insecure_channel(first.address) as channel:
            stubs = Stubs.on(channel)
            await create_workflow(stubs, "fan", fan_out(40, IN_FLIGHT, config))
            run = await start_run(
                stubs, "fan", {"items": list(range(40))}, max_cost=money(MAX_COST)
            )
            # A full round of calls held inside the provider: in flight at the kill.
            await eventually(lambda: len(lines(calls)) == IN_FLIGHT, what="calls in flight")
            first.kill()
    finally:
        first.kill()
    assert len(lines(calls)) == IN_FLIGHT

    release.touch()
    second = start_serving(env=faults_env)
    async with grpc.aio.insecure_channel(second.address) as channel:
        stubs = Stubs.on(channel)
        history = await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
    assert second.stop() == 0

    assert history[-1].type in FINAL_EVENT_TYPES
    charged = of_type(history, E.RUN_EVENT_TYPE_LLM_CALL)
    # Every call the provider received is charged, once.
    assert len(charged) == len(lines(calls))
    # The calls in flight at the crash, at their worst case, saying so.
    worst = [e for e in charged if "charged its reservation" in e.message]
    assert len(worst) == IN_FLIGHT
    assert {money_nanos(e.cost) for e in worst} == {int(WORST_CASE * NANOS)}
    # Run.cost is the sum of its LLM_CALL costs, and within max_cost.
    assert money_nanos(final.cost) == sum(money_nanos(e.cost) for e in charged)
    assert money_nanos(final.cost) <= MAX_COST * NANOS
    # The ceiling was reached after the restart, not reset by it.
    assert len(lines(calls)) < 2 * IN_FLIGHT


RATE_PER_MINUTE = 6
BURST = 5


async def test_rate_quota_holds_across_a_kill(
    start_serving: StartServing, faults_env: dict[str, str], tmp_path: Path
) -> None:
    calls = tmp_path / "calls"
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "quotas:\n"
        f"  - {{name: counted-rpm, scope: 'provider:counted', dimension: requests,"
        f" limit: {RATE_PER_MINUTE}, burst: {BURST}}}\n"
    )
    args = ("--policy", str(policy))
    config = {"log": str(tmp_path / "executions"), "llm": {"calls": str(calls)}}
    first = start_serving(env=faults_env, args=args)
    try:
        async with grpc.aio.insecure_channel(first.address) as channel:
            stubs = Stubs.on(channel)
            await create_workflow(stubs, "fan", fan_out(20, 20, config))
            run = await start_run(stubs, "fan", {"items": list(range(20))})
            await eventually(lambda: len(lines(calls)) >= BURST, what="the burst spent")
            first.kill()
    finally:
        first.kill()

    second = start_serving(env=faults_env, args=args)
    async with grpc.aio.insecure_channel(second.address) as channel:
        stubs = Stubs.on(channel)
        # A new run asks for calls at once after the restart.
        run = await start_run(stubs, "fan", {"items": list(range(20))})
        await asyncio.wait_for(a_call_waits_for_the_quota(stubs, run.name), HANG_TIMEOUT)
    assert second.stop() == 0

    times = [float(line) for line in lines(calls)]
    rate = RATE_PER_MINUTE / 60
    # Timestamps are taken just after admission: half a second and one call of slack.
    for i in range(len(times)):
        for j in range(i, len(times)):
            allowed = BURST + rate * (times[j] - times[i] + 0.5) + 1
            assert j - i + 1 <= allowed, (i, j, times)


async def a_call_waits_for_the_quota(stubs: Stubs, run: str) -> None:
    """Returns once a call of `run` waits for the quota: the restarted
    server's bucket has no more to give at once."""
    call = stubs.progress.WatchRun(progress_service_pb2.WatchRunRequest(run=run))
    try:
        async for response in call:
            for event in response.events:
                if event.type == E.RUN_EVENT_TYPE_STEP_WAITING and "quota:" in event.message:
                    return
    finally:
        call.cancel()


# The server dies at the 1st, then 7th, then 13th execution after each start.
KILL_AT = (1, 7, 13)
ITEMS = 30


async def test_every_execution_has_a_durable_attempt(
    start_serving: StartServing, faults_env: dict[str, str], tmp_path: Path
) -> None:
    executions, kill_file = tmp_path / "executions", tmp_path / "kill"
    config = {"log": str(executions), "kill_file": str(kill_file)}
    server = start_serving(env=faults_env)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stubs = Stubs.on(channel)
        await create_workflow(stubs, "fan", fan_out(ITEMS, 10, config))
        kill_file.write_text(str(KILL_AT[0]))
        run = await start_run(stubs, "fan", {"items": list(range(ITEMS))})
    for kill_at in (*KILL_AT[1:], None):
        # An agent kills the server (at once, in the agent itself: the moment
        # an execution starts, not when a test gets round to it).
        assert await asyncio.to_thread(server.process.wait, HANG_TIMEOUT) == -signal.SIGKILL
        if kill_at is not None:
            kill_file.write_text(str(kill_at))
        try:
            server = start_serving(env=faults_env)
        except ServerExited:  # killed by a resumed agent before it answered health
            continue
    async with grpc.aio.insecure_channel(server.address) as channel:
        stubs = Stubs.on(channel)
        history = await collect_events(stubs, run.name)
    assert server.stop() == 0
    assert history[-1].type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED

    logged = [json.loads(line) for line in lines(executions)]
    assert len(logged) > ITEMS  # some ran more than once: crashes happened mid-flight
    with sqlite3.connect(tmp_path / "podium.db") as conn:
        rows = set(conn.execute("SELECT run_id, step_id, item, number FROM attempts").fetchall())
    keys = [(e["run"], e["step"], e["i"], e["attempt"]) for e in logged]
    missing = [key for key in keys if key not in rows]
    assert not missing, f"{len(missing)} of {len(logged)} executions have no attempt: {missing}"
    # An attempt whose row was lost is numbered again by the next execution:
    # each execution must have had an attempt of its own.
    reused = {key for key in keys if keys.count(key) > 1}
    assert not reused, f"executions sharing one attempt row: {sorted(reused)}"
