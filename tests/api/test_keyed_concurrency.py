"""Keyed concurrency through a real server: a fan-out runs at most
`max_per_key` items of one concurrency key at once (a property over random
keys), and a workflow's run_concurrency admits at most `max_runs` runs per
key of their input, the others waiting PENDING in order."""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podium.testing import (
    HoldAgent,
    Stubs,
    create_workflow,
    eventually,
    field_violations,
    get_run,
    plain,
    plugins_with,
    run_to_end,
    serving,
    start_run,
    step_of,
)
from podium.v1 import run_pb2


class PerKeyGauge:
    """Counts its items running at once, per `input.customer`; each item
    yields to the loop a few times so that others can start meanwhile."""

    name = "gauge"
    description = "Records the most items running at once per customer."
    version = "1"

    def __init__(self) -> None:
        self.running: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.most_overall = 0

    async def run(self, ctx: Any) -> Any:
        customer = ctx.input["customer"]
        self.running[customer] = self.running.get(customer, 0) + 1
        self.most[customer] = max(self.most.get(customer, 0), self.running[customer])
        self.most_overall = max(self.most_overall, sum(self.running.values()))
        try:
            for _ in range(5):
                await asyncio.sleep(0)
        finally:
            self.running[customer] -= 1
        return {"customer": customer}


_ids = itertools.count()


@pytest.fixture
async def gauged(tmp_path: Path) -> AsyncIterator[tuple[Stubs, PerKeyGauge]]:
    gauge = PerKeyGauge()
    async with serving(str(tmp_path / "podium.db"), plugins=plugins_with([gauge])) as (_, stubs):
        yield stubs, gauge


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    customers=st.lists(st.sampled_from(["acme", "globex", "initech"]), min_size=1, max_size=30),
    per_key=st.integers(1, 3),
)
async def test_a_fan_out_never_runs_more_than_max_per_key_items_of_a_key(
    gauged: tuple[Stubs, PerKeyGauge], customers: list[str], per_key: int
) -> None:
    stubs, gauge = gauged
    gauge.most.clear()
    workflow_id = f"fan-{next(_ids)}"
    spec = {
        "steps": [
            {
                "id": "each",
                "agent": "gauge",
                "forEach": {
                    "items": "input.orders",
                    "maxConcurrency": 10,
                    "concurrencyKey": "item.customer_id",
                    "maxPerKey": per_key,
                },
                "input": {"customer": "item.customer_id"},
            }
        ]
    }
    await create_workflow(stubs, workflow_id, spec)
    orders = [{"customer_id": c, "n": i} for i, c in enumerate(customers)]
    run, _ = await run_to_end(stubs, workflow_id, {"orders": orders})
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED, run.failure.message
    assert all(most <= per_key for most in gauge.most.values()), gauge.most
    # Every item ran, its output in item order.
    assert [o["customer"] for o in plain(step_of(run, "each").output)] == customers


async def test_keys_run_side_by_side(gauged: tuple[Stubs, PerKeyGauge]) -> None:
    stubs, gauge = gauged
    spec = {
        "steps": [
            {
                "id": "each",
                "agent": "gauge",
                "forEach": {
                    "items": "input.orders",
                    "concurrencyKey": "item",
                    "maxPerKey": 1,
                },
                "input": {"customer": "item"},
            }
        ]
    }
    await create_workflow(stubs, "side", spec)
    run, _ = await run_to_end(stubs, "side", {"orders": ["a"] * 4 + ["b"] * 4})
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED
    assert gauge.most == {"a": 1, "b": 1}


@pytest.mark.parametrize(
    ("for_each", "field"),
    [
        ({"items": "input.x", "concurrencyKey": "item.k"}, "max_per_key"),
        ({"items": "input.x", "maxPerKey": 2}, "concurrency_key"),
        ({"items": "input.x", "concurrencyKey": "item.", "maxPerKey": 2}, "concurrency_key"),
    ],
)
async def test_a_bad_key_is_refused(
    gauged: tuple[Stubs, PerKeyGauge], for_each: dict[str, Any], field: str
) -> None:
    stubs, _ = gauged
    spec = {"steps": [{"id": "each", "agent": "echo", "forEach": for_each}]}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create_workflow(stubs, "bad", spec)
    assert [f for f, _ in field_violations(caught.value)] == [f"spec.steps[0].for_each.{field}"]


async def test_run_concurrency_admits_max_runs_per_key_of_the_input(tmp_path: Path) -> None:
    hold = HoldAgent()
    spec = {
        "runConcurrency": {"key": "input.customer", "maxRuns": 1},
        "steps": [{"id": "work", "agent": "hold", "input": {"customer": "input.customer"}}],
    }
    async with serving(str(tmp_path / "podium.db"), plugins=plugins_with([hold])) as (_, s):
        await create_workflow(s, "orders", spec)
        first = await start_run(s, "orders", {"customer": "acme"})
        await eventually(lambda: len(hold.held) == 1, what="the first acme run holds")
        second = await start_run(s, "orders", {"customer": "acme"})
        other = await start_run(s, "orders", {"customer": "globex"})
        await eventually(lambda: len(hold.held) == 2, what="globex runs beside acme")
        assert (await get_run(s, second.name)).state == run_pb2.RUN_STATE_PENDING
        hold.release()
        for run in (first, second, other):
            await eventually(functools.partial(_ended, s, run.name), what=f"{run.name} ends")
        # Any JSON value is a key; only an expression that fails is refused.
        number = await start_run(s, "orders", {"customer": 7})
        await eventually(lambda: _ended(s, number.name), what="a numeric key runs")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await start_run(s, "orders", {})
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(refused.value)] == ["input"]


async def _ended(stubs: Stubs, name: str) -> bool:
    return (await get_run(stubs, name)).state == run_pb2.RUN_STATE_SUCCEEDED
