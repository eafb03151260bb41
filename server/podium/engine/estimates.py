"""Estimates before a run: from the workflow's history when it has finished
runs (p50 and p95 of their durations and costs), otherwise the most its LLM
steps can cost at the price table's prices (duration unknown)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from podium.engine.history import finished_runs
from podium.engine.insights import percentile
from podium.engine.ports import RunStore
from podium.engine.validation import Plan
from podium.governance.gate import CHARACTERS_PER_TOKEN
from podium.governance.prices import PriceTable
from podium.plugins.builtin import llm, react

# Agents whose model calls the price table can bound, and how many calls each makes.
LLM_AGENTS = ("llm", "react")


@dataclass(frozen=True, slots=True)
class Estimate:
    source: str  # "history" or "price_table"
    runs: int = 0
    p50_duration: float | None = None
    p95_duration: float | None = None
    p50_cost: Decimal | None = None
    p95_cost: Decimal | None = None
    # The price table's bound (price_table only).
    max_cost: Decimal | None = None
    note: str = ""


async def estimate(store: RunStore, prices: PriceTable, workflow_id: str, plan: Plan) -> Estimate:
    """`workflow_id` "" (a definition not stored yet) skips history."""
    histories = await finished_runs(store, workflow_id, float("-inf")) if workflow_id else []
    if histories:
        durations = [
            h.run.end_time - h.run.start_time
            for h in histories
            if h.run.start_time is not None and h.run.end_time is not None
        ]
        costs = sorted(h.run.cost for h in histories)
        return Estimate(
            source="history",
            runs=len(histories),
            p50_duration=percentile(durations, 0.5),
            p95_duration=percentile(durations, 0.95),
            p50_cost=costs[max(0, math.ceil(0.5 * len(costs)) - 1)],
            p95_cost=costs[max(0, math.ceil(0.95 * len(costs)) - 1)],
            note=f"from the {len(histories)} newest finished runs of {workflow_id}",
        )
    return from_prices(prices, plan)


def from_prices(prices: PriceTable, plan: Plan) -> Estimate:
    """The most the LLM steps can cost: each prompt's template text as its
    input tokens (rendered values add more), max_tokens of output, every
    turn of a react step; once per run of a step (a fan-out multiplies it)."""
    total = Decimal(0)
    unpriced: list[str] = []
    fan_outs: list[str] = []
    for step in plan.spec.steps:
        if step.agent not in LLM_AGENTS:
            continue
        config = step.config
        provider = str(config.get("provider", llm.DEFAULT_PROVIDER))
        model = str(config.get("model", llm.DEFAULT_MODEL))
        text = str(config.get("prompt", "")) + str(config.get("system", ""))
        input_tokens = max(1, math.ceil(len(text) / CHARACTERS_PER_TOKEN))
        output_tokens = _int(config.get("max_tokens"), llm.DEFAULT_MAX_TOKENS)
        calls = (
            _int(config.get("max_turns"), react.DEFAULT_MAX_TURNS) if step.agent == "react" else 1
        )
        price, _ = prices.lookup(provider, model)
        if price is None:
            unpriced.append(f"{step.id} ({provider}/{model})")
            continue
        total += calls * price.worst_case(input_tokens, output_tokens)
        if step.for_each is not None or step.loop is not None:
            fan_outs.append(step.id)
    notes = ["no finished runs yet: the most the LLM steps can cost, duration unknown"]
    if fan_outs:
        notes.append("per item or iteration of " + ", ".join(fan_outs))
    if unpriced:
        notes.append("no price for " + ", ".join(unpriced))
    return Estimate(source="price_table", max_cost=total, note="; ".join(notes))


def _int(value: object, default: int) -> int:
    try:
        return int(value) if value is not None else default  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return default
