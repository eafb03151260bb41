"""W8: 200 concurrent `llm` calls racing for one run budget.

One run of a fan-out of 200 `llm` items, all at once (max_concurrency 200), on
the simulated provider at 20 ms a call. Each call's answer is cut at
max_tokens, so its actual cost is exactly its worst case, and StartRun's
max_cost holds exactly 60% of the calls: 120 must be admitted, the other 80
refused with podium.BudgetExceeded (the step tolerates them), and the run's
spend (Run.cost) must never exceed the limit. The row's wall time runs from
StartRun to the run's final event.
"""

from __future__ import annotations

import math
import time
from decimal import Decimal
from typing import Any

import grpc
from google.protobuf import json_format

from bench.measure import Measurement, repeat
from bench.server import FINAL_EVENTS, BenchError, server_process
from bench.workloads import Workload
from podium.plugins.builtin.simulated_provider import PRICES
from podium.testing import Stubs
from podium.v1 import (
    common_pb2,
    event_pb2,
    execution_service_pb2,
    progress_service_pb2,
    workflow_service_pb2,
)

LATENCY_MS = 20
MAX_TOKENS = 8
SHARE_THAT_FITS = Decimal("0.6")
PROMPT = "Classify ticket {{ input.item }}"
BUDGET_EXCEEDED = "podium.BudgetExceeded"


def call_cost(item: int) -> Decimal:
    """A sim-small call of this benchmark: the rendered prompt's ceil(chars / 4)
    input tokens, and an answer cut at MAX_TOKENS."""
    price = PRICES["sim-small"]
    input_tokens = math.ceil(len(PROMPT.replace("{{ input.item }}", str(item))) / 4)
    return (input_tokens * price.input + MAX_TOKENS * price.output) / Decimal(1_000_000)


def _workflow_request(workflow_id: str, items: int) -> Any:
    each = {
        "id": "each",
        "agent": "llm",
        "for_each": {
            "items": "input.items",
            "max_concurrency": items,
            "tolerated_failure_percent": 100,
        },
        "input": {"item": "item"},
        "config": {
            "model": "sim-small",
            "max_tokens": MAX_TOKENS,
            "options": {"latency_ms": LATENCY_MS},
            "prompt": PROMPT,
        },
    }
    body = {"workflow_id": workflow_id, "spec": {"steps": [each]}}
    return json_format.ParseDict(body, workflow_service_pb2.CreateWorkflowRequest())


def _money(amount: Decimal) -> common_pb2.Money:
    nanos = int(amount * 1_000_000_000)
    return common_pb2.Money(currency_code="USD", units=nanos // 10**9, nanos=nanos % 10**9)


def _usd(amount: Decimal) -> str:
    return f"${amount.normalize():f}"


def _decimal(money: common_pb2.Money) -> Decimal:
    return Decimal(money.units) + Decimal(money.nanos) / Decimal(1_000_000_000)


class _Race:
    def __init__(self, stubs: Stubs, workflow: str, items: int, limit: Decimal) -> None:
        self.stubs = stubs
        self.workflow = workflow
        self.items = items
        self.limit = limit
        # Per run: (Run.cost, items admitted, items refused for the budget).
        self.outcomes: list[tuple[Decimal, int, int]] = []

    async def once(self) -> float:
        started = time.perf_counter()
        request = execution_service_pb2.StartRunRequest(
            workflow=self.workflow, max_cost=_money(self.limit)
        )
        request.input.update({"items": list(range(self.items))})
        run = (await self.stubs.executions.StartRun(request)).run
        watch = progress_service_pb2.WatchRunRequest(run=run.name)
        admitted = refused = 0
        async for response in self.stubs.progress.WatchRun(watch):
            for event in response.events:
                if event.type == event_pb2.RUN_EVENT_TYPE_ITEM_SUCCEEDED:
                    admitted += 1
                elif event.type == event_pb2.RUN_EVENT_TYPE_ITEM_FAILED:
                    if event.failure.type != BUDGET_EXCEEDED:
                        raise BenchError(f"{run.name}: an item failed with {event.failure.type}")
                    refused += 1
                elif event.type in FINAL_EVENTS:
                    wall = time.perf_counter() - started
                    if event.type == event_pb2.RUN_EVENT_TYPE_RUN_CANCELLED:
                        raise BenchError(f"{run.name} was cancelled")
                    final = execution_service_pb2.GetRunRequest(name=run.name)
                    cost = _decimal((await self.stubs.executions.GetRun(final)).run.cost)
                    self.outcomes.append((cost, admitted, refused))
                    return wall
        raise BenchError(f"{run.name}: the stream ended before the run's final event")


async def measure_budget_race(workload: Workload) -> Measurement:
    items = workload.steps_per_run
    costs = [call_cost(i) for i in range(items)]
    # The cheapest 60% of the calls fit exactly; any more would overrun it.
    limit = sum(sorted(costs)[: int(items * SHARE_THAT_FITS)], Decimal(0))
    async with server_process() as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stubs = Stubs.on(channel)
            request = _workflow_request(workload.name.lower(), items)
            workflow = (await stubs.workflows.CreateWorkflow(request)).workflow.name
            race = _Race(stubs, workflow, items, limit)
            walls = await repeat(workload, race.once)
        peak_rss_mb = await server.stop()
    worst = max(cost for cost, _, _ in race.outcomes)
    kept = all(cost <= limit for cost, _, _ in race.outcomes)
    contested = all(refused > 0 for _, _, refused in race.outcomes)
    admitted = sorted({a for _, a, _ in race.outcomes})
    refused = sorted({r for _, _, r in race.outcomes})
    name = workload.name
    each = _usd(min(costs)) if min(costs) == max(costs) else f"{_usd(min(costs))}-{max(costs):f}"
    notes = (
        f"{name}: max_cost {_usd(limit)} holds {SHARE_THAT_FITS:.0%} of {items} calls of "
        f"{each}; per run {'/'.join(map(str, admitted))} admitted, "
        f"{'/'.join(map(str, refused))} refused with {BUDGET_EXCEEDED}",
        f"{name}: highest Run.cost {_usd(worst)} over {len(race.outcomes)} runs against "
        f"max_cost {_usd(limit)}: " + ("never exceeded" if kept else "EXCEEDED"),
    )
    verdict = ("spend ≤ max_cost", kept and contested)
    return Measurement(walls, peak_rss_mb, notes, verdict)
