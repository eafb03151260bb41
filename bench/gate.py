"""W7: what the governance gate adds to one LLM call, in-process.

No server, no gRPC, no event loop for the gate itself: a Governance built
from a policy with quotas and budgets in every scope a call falls in (server,
provider, model, workflow) plus a run limit, and the sequence the gateway runs
around each call, timed call by call:

  breakers allow (provider, model, agent) -> quotas.plan -> quotas.try_admit
  -> prices.worst_case -> ledger.reserve -> price.cost -> ledger.settle
  -> quotas.settle -> quotas.release -> breakers record -> record_spend

Then, as a check on the whole path, LlmGate.complete on the simulated
provider at zero latency against the bare provider call (its observer
records nothing, so that figure is the gate's governance and bookkeeping
without persistence).

Run as `python -m bench.gate [ITERATIONS]` (from the repository root) for a
fresh process and its own peak RSS; prints one JSON line.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

from bench.measure import REPO_ROOT, Measurement, own_peak_rss_mb
from bench.workloads import Workload
from podium.core.clock import SystemClock
from podium.governance.gate import Caller, LlmGate, NullObserver
from podium.governance.policy import Policy
from podium.governance.prices import Price
from podium.governance.quotas import Admission
from podium.governance.scopes import CallScopes
from podium.governance.service import Governance
from podium.plugins.api import CompletionRequest, Message, Usage
from podium.plugins.builtin.simulated_provider import PRICES, SimulatedProvider

ITERATIONS = 20_000
WARM_UP = 2_000
GATEWAY_CALLS = 5_000
TARGET_MEDIAN_US = 50.0

# Limits no benchmark iteration comes near, so that every call is admitted:
# the gate does all its checks and bookkeeping but never waits.
POLICY: dict[str, Any] = {
    "quotas": [
        {"name": "sim-requests", "scope": "provider:simulated", "dimension": "requests",
         "limit": 1e9, "burst": 1e9},
        {"name": "sim-tokens", "scope": "provider:simulated", "dimension": "tokens",
         "limit": 1e12, "burst": 1e12},
        {"name": "small-output", "scope": "model:simulated/sim-small",
         "dimension": "output_tokens", "limit": 1e12},
        {"name": "sim-in-flight", "scope": "provider:simulated", "dimension": "concurrency",
         "limit": 64},
    ],
    "budgets": [
        {"name": "server-daily", "scope": "server", "limit": "1000000", "period": "day"},
        {"name": "sim-monthly", "scope": "provider:simulated", "limit": "1000000",
         "period": "month", "time_zone": "Europe/Paris"},
        {"name": "bench-workflow", "scope": "workflow:bench", "limit": "1000000"},
    ],
    "breakers": {"overrides": {"model:simulated/sim-large": {"failure_threshold": 2}}},
}  # fmt: skip
RUN_LIMIT = Decimal("1000000")
CALL = CallScopes(provider="simulated", model="sim-small", agent="llm", workflow="bench")
INPUT_TOKENS = 120
MAX_TOKENS = 256
USAGE = Usage(input_tokens=118, output_tokens=97, calls=1)


def governance() -> Governance:
    """As the server builds it (without a store: spend is not persisted here)."""
    governance = Governance(Policy.model_validate(POLICY), SystemClock())
    for model, price in PRICES.items():
        governance.prices.contribute("simulated", model, Price.from_model_price(price))
    return governance


def gate_once(gov: Governance, run_id: str) -> None:
    """One call's governance, as StepLlmGateway does it around the provider call."""
    board = gov.breakers
    breakers = [
        board.breaker(f"provider:{CALL.provider}"),
        board.breaker(f"model:{CALL.model_key}"),
        board.breaker(f"agent:{CALL.agent}"),
    ]
    if not all(b.allow() for b in breakers):
        raise RuntimeError("a breaker is open")
    demand = gov.quotas.plan(CALL, INPUT_TOKENS, MAX_TOKENS)
    admission = gov.quotas.try_admit(demand)
    if not isinstance(admission, Admission):
        raise RuntimeError(f"blocked by {admission.reason}")
    worst = gov.prices.worst_case(CALL.provider, CALL.model, INPUT_TOKENS, MAX_TOKENS)
    reservation = gov.ledger.reserve(CALL, run_id, RUN_LIMIT, worst)
    price, _version = gov.prices.lookup(CALL.provider, CALL.model)
    assert price is not None
    cost = price.cost(USAGE)
    gov.ledger.settle(reservation, cost)
    gov.quotas.settle(admission, USAGE.input_tokens, USAGE.output_tokens)
    gov.quotas.release(admission)
    for breaker in breakers:
        breaker.record("success")
    gov.record_spend(CALL, cost)


def time_gate(iterations: int) -> tuple[list[float], float]:
    """Per-call times (µs) and the wall time (s) of `iterations` gate passes."""
    gov = governance()
    for _ in range(WARM_UP):
        gate_once(gov, "warm-up")
    gov.ledger.close_run("warm-up")
    samples: list[float] = []
    clock = time.perf_counter_ns
    started = time.perf_counter()
    for _ in range(iterations):
        before = clock()
        gate_once(gov, "bench-run")
        samples.append((clock() - before) / 1000)
    return samples, time.perf_counter() - started


async def _timed(call: Callable[[], Awaitable[Any]], count: int) -> list[float]:
    for _ in range(count // 5):
        await call()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(count):
        before = clock()
        await call()
        samples.append((clock() - before) / 1000)
    return samples


async def time_gateway(count: int) -> tuple[float, float]:
    """Median µs of a governed gateway call and of the bare provider call."""
    provider = SimulatedProvider(latency_ms=0)
    caller = Caller(run_id="gateway-run", workflow="bench", agent="llm", max_cost=RUN_LIMIT)
    gateway = LlmGate(
        governance(),
        lambda name: provider if name == "simulated" else None,
        caller,
        NullObserver(),
    )
    request = CompletionRequest(
        model="sim-small",
        messages=[Message("user", "Summarise this support ticket in one sentence: " * 10)],
        max_tokens=MAX_TOKENS,
    )
    bare = await _timed(lambda: provider.complete(request), count)
    governed = await _timed(lambda: gateway.complete("simulated", request), count)
    return statistics.median(governed), statistics.median(bare)


def percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure_gate(workload: Workload) -> Measurement:
    """Runs this module in a fresh process (its own peak RSS, nothing else
    imported or allocated) and turns its figures into the W7 row."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.gate",
        str(workload.steps_per_run),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"bench.gate exited with {process.returncode}")
    figures = json.loads(out)
    median_us, p99_us = figures["median_us"], figures["p99_us"]
    gateway_us, bare_us = figures["gateway_us"], figures["bare_provider_us"]
    name = workload.name
    notes = (
        f"{name}: gate per call median {median_us:.1f} µs, p99 {p99_us:.1f} µs "
        f"over {workload.steps_per_run:,} calls (target: median ≤{TARGET_MEDIAN_US:g} µs)",
        f"{name}: LlmGate.complete at zero provider latency median {gateway_us:.1f} µs"
        f" - bare provider call {bare_us:.1f} µs = {gateway_us - bare_us:.1f} µs"
        " (events not persisted)",
    )
    verdict = (f"median ≤{TARGET_MEDIAN_US:g} µs", median_us <= TARGET_MEDIAN_US)
    return Measurement(list(figures["walls_s"]), float(figures["peak_rss_mb"]), notes, verdict)


def main(argv: Sequence[str]) -> int:
    iterations = int(argv[0]) if argv else ITERATIONS
    # The collector stays on, as in the server: its pauses land in the p99.
    gc.collect()
    samples, wall_s = time_gate(iterations)
    median_us = statistics.median(samples)
    p99_us = percentile(samples, 0.99)
    gateway_us, bare_us = asyncio.run(time_gateway(GATEWAY_CALLS))
    print(
        json.dumps(
            {
                "walls_s": [wall_s],
                "peak_rss_mb": own_peak_rss_mb(),
                "median_us": median_us,
                "p99_us": p99_us,
                "gateway_us": gateway_us,
                "bare_provider_us": bare_us,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
