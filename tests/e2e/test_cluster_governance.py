"""Governance across three `podium serve --cluster` processes on one database,
checked against what the provider really received (the `faults` test plugin,
site/podium_e2e_faults.py, logs every call it receives in a file).

- a budget holds across servers: 200 concurrent budgeted calls spread over the
  three servers never settle more than the limit (overshoot 0), while each
  server alone would have admitted up to the whole limit;
"""

from __future__ import annotations

import asyncio
import os
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
from podium.v1 import event_pb2

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
