"""Governance across three `podium serve --cluster` processes on one database,
checked against what the provider really received (the `faults` test plugin,
site/podium_e2e_faults.py, logs every call it receives in a file).

- a budget holds across servers: 200 concurrent budgeted calls spread over the
  three servers never settle more than the limit (overshoot 0), while each
  server alone would have admitted up to the whole limit;
- a rate quota admits no more than rate + burst over any window, across servers;
- a concurrency quota lets no more calls in flight than its limit, across servers;
- a breaker opened by one server's faults is open on the others, and one probe decides.
"""

from __future__ import annotations

import asyncio
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest

from podium.testing import (
    FINAL_EVENT_TYPES,
    Cluster,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    eventually,
    get_run,
    of_type,
    start_run,
    step_of,
)
from podium.testing.values import money_nanos
from podium.v1 import control_service_pb2, event_pb2, progress_service_pb2

E = event_pb2
SITE = Path(__file__).resolve().parent / "site"
NANOS = 10**9
# What one call to `counted` may cost at worst: 2 input tokens by the gate's
# estimate plus max_tokens 10, at a dollar a token.
WORST_CASE = Decimal(12)
LIMIT = Decimal(300)
# First 8 calls per server, held inside the provider: 24 worst cases reserved (288),
# across the three servers. Then 59 more per server while those are held: one more
# fits (300 - 288 = 12), wherever it is asked; the others are refused.
HELD_PER_SERVER = 8
MORE_PER_SERVER = 59  # 3 * (8 + 59) = 201 calls asked in all


@pytest.fixture
def faults_env() -> dict[str, str]:
    pythonpath = os.pathsep.join(filter(None, [str(SITE), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": pythonpath}


def fan_out(items: int, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "steps": [
            echo_step("plan", input={"items": "input.items"}),
            {
                "id": "each",
                "agent": "logged",
                "dependsOn": ["plan"],
                # Every item runs, refused or not.
                "forEach": {
                    "items": "steps.plan.output.items",
                    "maxConcurrency": items,
                    "toleratedFailurePercent": 100,
                },
                "input": {"i": "item"},
                "config": config,
            },
        ]
    }


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def test_a_budget_holds_across_three_servers(
    cluster: Cluster, faults_env: dict[str, str], tmp_path: Path
) -> None:
    calls, release = tmp_path / "calls", tmp_path / "release"
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"budgets:\n  - {{name: everything, scope: server, limit: {LIMIT}}}\n")
    config = {
        "log": str(tmp_path / "executions"),
        "llm": {"calls": str(calls), "hold_until": str(release)},
    }
    servers = [
        cluster.start(name, env=faults_env, args=("--policy", str(policy)))
        for name in ("one", "two", "three")
    ]
    channels = [grpc.aio.insecure_channel(server.address) for server in servers]
    try:
        stubs = [Stubs.on(channel) for channel in channels]
        await create_workflow(stubs[0], "held", fan_out(HELD_PER_SERVER, config))
        await create_workflow(stubs[0], "more", fan_out(MORE_PER_SERVER, config))
        # Each server owns the runs it received: their calls go out from it.
        held = await asyncio.gather(
            *(start_run(s, "held", {"items": list(range(HELD_PER_SERVER))}) for s in stubs)
        )
        await eventually(
            lambda: len(lines(calls)) == len(servers) * HELD_PER_SERVER,
            what="every server's first calls held in the provider",
        )
        more = await asyncio.gather(
            *(start_run(s, "more", {"items": list(range(MORE_PER_SERVER))}) for s in stubs)
        )

        async def refused_but_one() -> bool:
            done = 0
            for run in more:
                each = step_of(await get_run(stubs[0], run.name), "each")
                done += each.items_failed
            return done >= len(servers) * MORE_PER_SERVER - 1

        await eventually(refused_but_one, what="the calls beyond the budget refused")
        release.touch()
        runs = [*held, *more]
        owners = [*stubs, *stubs]
        histories = await asyncio.gather(
            *(collect_events(s, run.name, timeout=240) for s, run in zip(owners, runs, strict=True))
        )
        finals = [await get_run(stubs[0], run.name) for run in runs]
    finally:
        for channel in channels:
            await channel.close()

    charged = [e for history in histories for e in of_type(history, E.RUN_EVENT_TYPE_LLM_CALL)]
    refused = [
        e
        for history in histories
        for e in of_type(history, E.RUN_EVENT_TYPE_ITEM_FAILED)
        if "budget 'everything' exceeded" in e.failure.message
    ]
    spent = sum(money_nanos(e.cost) for e in charged)
    print(
        f"\ncluster budget: {len(charged) + len(refused)} calls asked on 3 servers, "
        f"{len(charged)} charged {Decimal(spent) / NANOS} of {LIMIT}, {len(refused)} refused, "
        f"overshoot {max(0, spent - int(LIMIT * NANOS)) / NANOS}"
    )
    for history in histories:
        assert history[-1].type in FINAL_EVENT_TYPES
    assert len(charged) + len(refused) == len(servers) * (HELD_PER_SERVER + MORE_PER_SERVER)
    # Every call the provider received is charged once, and their sum is within
    # the limit: overshoot 0.
    assert len(charged) == len(lines(calls))
    assert spent <= LIMIT * NANOS
    # The others' reservations counted on each server: with only its own 8 held
    # (96 of 300), each server refused calls of its second run.
    assert len(charged) <= len(servers) * HELD_PER_SERVER + 1
    for run, history in zip(more, histories[len(held) :], strict=True):
        assert len(of_type(history, E.RUN_EVENT_TYPE_ITEM_FAILED)) >= MORE_PER_SERVER - 1, run.name
    for final, history in zip(finals, histories, strict=True):
        assert money_nanos(final.cost) == sum(
            money_nanos(e.cost) for e in of_type(history, E.RUN_EVENT_TYPE_LLM_CALL)
        )


RATE_PER_MINUTE = 120  # two a second
BURST = 4
RATE_CALLS_PER_SERVER = 6


async def test_a_rate_quota_holds_across_three_servers(
    cluster: Cluster, faults_env: dict[str, str], tmp_path: Path
) -> None:
    """Each server alone would send its first calls at once (3 x BURST); together
    they never send more than rate + burst over any window."""
    calls = tmp_path / "calls"
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "quotas:\n"
        f"  - {{name: counted-rpm, scope: 'provider:counted', dimension: requests,"
        f" limit: {RATE_PER_MINUTE}, burst: {BURST}}}\n"
    )
    config = {"log": str(tmp_path / "executions"), "llm": {"calls": str(calls)}}
    servers = [
        cluster.start(name, env=faults_env, args=("--policy", str(policy)))
        for name in ("one", "two", "three")
    ]
    channels = [grpc.aio.insecure_channel(server.address) for server in servers]
    try:
        stubs = [Stubs.on(channel) for channel in channels]
        await create_workflow(stubs[0], "fan", fan_out(RATE_CALLS_PER_SERVER, config))
        items = {"items": list(range(RATE_CALLS_PER_SERVER))}
        runs = await asyncio.gather(*(start_run(s, "fan", items) for s in stubs))
        histories = await asyncio.gather(
            *(collect_events(s, run.name, timeout=240) for s, run in zip(stubs, runs, strict=True))
        )
    finally:
        for channel in channels:
            await channel.close()

    for history in histories:
        assert history[-1].type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED
    times = sorted(float(line) for line in lines(calls))
    assert len(times) == len(servers) * RATE_CALLS_PER_SERVER
    rate = RATE_PER_MINUTE / 60
    # Timestamps are taken just after admission: a tenth of a second and one call
    # of slack for the time between admission and the provider's log line.
    worst = 0.0
    for i in range(len(times)):
        for j in range(i, len(times)):
            allowed = BURST + rate * (times[j] - times[i] + 0.1) + 1
            worst = max(worst, (j - i + 1) - (BURST + rate * (times[j] - times[i])))
            assert j - i + 1 <= allowed, (i, j, times)
    # Calls waited for the quota on every server (each alone had room for BURST).
    waited = [
        any(
            e.type == E.RUN_EVENT_TYPE_STEP_WAITING and "quota:counted-rpm" in e.message
            for e in history
        )
        for history in histories
    ]
    print(
        f"\ncluster rate quota: {len(times)} calls over {times[-1] - times[0]:.2f} s, "
        f"most above rate + burst in any window: {worst:.2f} calls; waited: {waited}"
    )


IN_FLIGHT_LIMIT = 3
IN_FLIGHT_PER_SERVER = 3


async def test_a_concurrency_quota_holds_across_three_servers(
    cluster: Cluster, faults_env: dict[str, str], tmp_path: Path
) -> None:
    """Calls held inside the provider: only IN_FLIGHT_LIMIT reach it across the
    three servers (each alone would let IN_FLIGHT_PER_SERVER through), while every
    other call waits for the quota, visibly; released, all of them run."""
    calls, release = tmp_path / "calls", tmp_path / "release"
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "quotas:\n"
        f"  - {{name: counted-in-flight, scope: 'provider:counted', dimension: concurrency,"
        f" limit: {IN_FLIGHT_LIMIT}}}\n"
    )
    config = {
        "log": str(tmp_path / "executions"),
        "llm": {"calls": str(calls), "hold_until": str(release)},
    }
    servers = [
        cluster.start(name, env=faults_env, args=("--policy", str(policy)))
        for name in ("one", "two", "three")
    ]
    channels = [grpc.aio.insecure_channel(server.address) for server in servers]
    watchers: list[Watcher] = []
    try:
        stubs = [Stubs.on(channel) for channel in channels]
        await create_workflow(stubs[0], "fan", fan_out(IN_FLIGHT_PER_SERVER, config))
        items = {"items": list(range(IN_FLIGHT_PER_SERVER))}
        runs = await asyncio.gather(*(start_run(s, "fan", items) for s in stubs))
        watchers = [Watcher(s, run.name) for s, run in zip(stubs, runs, strict=True)]
        others = len(servers) * IN_FLIGHT_PER_SERVER - IN_FLIGHT_LIMIT

        def waiting() -> int:
            return sum(
                1
                for watcher in watchers
                for e in watcher.events
                if e.type == E.RUN_EVENT_TYPE_STEP_WAITING
                and "quota:counted-in-flight" in e.message
            )

        await eventually(
            lambda: len(lines(calls)) == IN_FLIGHT_LIMIT and waiting() == others,
            what="the limit's calls in the provider, every other one waiting for the quota",
        )
        # Every call is either in the provider or waiting: the limit held.
        in_provider = len(lines(calls))
        release.touch()
        await asyncio.wait_for(asyncio.gather(*(w.task for w in watchers)), timeout=240)
    finally:
        for watcher in watchers:
            await watcher.close()
        for channel in channels:
            await channel.close()
    assert in_provider == IN_FLIGHT_LIMIT
    for watcher in watchers:
        assert watcher.events[-1].type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED
    assert len(lines(calls)) == len(servers) * IN_FLIGHT_PER_SERVER


class Watcher:
    """Every event of one run's WatchRun stream, until it ends."""

    def __init__(self, stubs: Stubs, run: str) -> None:
        self.events: list[event_pb2.RunEvent] = []
        self._call = stubs.progress.WatchRun(progress_service_pb2.WatchRunRequest(run=run))
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for response in self._call:
            self.events.extend(response.events)

    async def close(self) -> None:
        self._call.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


FAILURES_TO_OPEN = 3
COOLDOWN = 3


async def test_a_breaker_opened_on_one_server_is_open_on_all_and_one_probe_decides(
    cluster: Cluster, faults_env: dict[str, str], tmp_path: Path
) -> None:
    """Provider faults on one server open the breaker; calls on the two others (which
    saw no fault) wait for it. After the cooldown exactly one probe reaches the
    provider, from whichever server, while every server is half-open; its success
    closes the breaker everywhere and the waiting calls go through."""
    calls, release = tmp_path / "calls", tmp_path / "release"
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"breakers:\n  defaults: {{failure_threshold: {FAILURES_TO_OPEN}, cooldown: {COOLDOWN}}}\n"
    )
    failing = {
        "log": str(tmp_path / "executions"),
        "llm": {"calls": str(calls), "fail_with": "server_error"},
    }
    held = {
        "log": str(tmp_path / "executions"),
        "llm": {"calls": str(calls), "hold_until": str(release)},
    }
    servers = [
        cluster.start(name, env=faults_env, args=("--policy", str(policy)))
        for name in ("one", "two", "three")
    ]
    channels = [grpc.aio.insecure_channel(server.address) for server in servers]
    watchers: list[Watcher] = []
    try:
        stubs = [Stubs.on(channel) for channel in channels]
        await create_workflow(stubs[0], "failing", fan_out(FAILURES_TO_OPEN, failing))
        await create_workflow(stubs[0], "held", fan_out(1, held))
        broken = await start_run(stubs[0], "failing", {"items": list(range(FAILURES_TO_OPEN))})
        await collect_events(stubs[0], broken.name, timeout=120)
        assert len(lines(calls)) == FAILURES_TO_OPEN

        async def states() -> list[int]:
            found = []
            for s in stubs:
                listed = await s.control.ListBreakers(control_service_pb2.ListBreakersRequest())
                by_name = {b.name: b.state for b in listed.breakers}
                found.append(by_name.get("provider:counted", 0))
            return found

        async def open_everywhere() -> bool:
            return await states() == [control_service_pb2.BREAKER_STATE_OPEN] * len(stubs)

        # Open on the servers that saw no fault too (adopted within a poll).
        await eventually(open_everywhere, what="the breaker open on every server")
        runs = [await start_run(s, "held", {"items": [0]}) for s in stubs]
        watchers = [Watcher(s, run.name) for s, run in zip(stubs, runs, strict=True)]

        def waited_for_the_breaker(watcher: Watcher) -> bool:
            return any(
                e.type == E.RUN_EVENT_TYPE_STEP_WAITING and "breaker:" in e.message
                for e in watcher.events
            )

        # Their calls wait (the provider, which logs every call it receives, got none).
        await eventually(
            lambda: all(waited_for_the_breaker(w) for w in watchers),
            what="every server's call waiting for the breaker",
        )
        await eventually(
            lambda: len(lines(calls)) == FAILURES_TO_OPEN + 1, what="a probe in the provider"
        )

        async def all_half_open() -> bool:
            return await states() == [control_service_pb2.BREAKER_STATE_HALF_OPEN] * len(stubs)

        # Every server is past the cooldown, each with a call waiting: still one probe.
        await eventually(all_half_open, what="every server half-open")
        released_at = time.time()
        release.touch()
        await asyncio.wait_for(asyncio.gather(*(w.task for w in watchers)), timeout=120)
    finally:
        for watcher in watchers:
            await watcher.close()
        for channel in channels:
            await channel.close()
    times = [float(line) for line in lines(calls)]
    assert len([t for t in times if t < released_at]) == FAILURES_TO_OPEN + 1
    for watcher in watchers:
        assert watcher.events[-1].type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED
    assert len(times) == FAILURES_TO_OPEN + len(servers)
