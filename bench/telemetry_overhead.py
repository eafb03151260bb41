"""What tracing and metrics cost per step: the same workloads through an
in-process server with telemetry off, then with spans (batched to an
in-memory exporter: span work without a network) and metrics (an in-memory
reader), interleaved round by round, the machine drifting as it may.

Usage: `.venv/bin/python bench/telemetry_overhead.py [ROUNDS]`. Prints the
median ms per step of each side and their difference (the overhead).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from podium.telemetry.setup import TelemetryRuntime, with_providers
from podium.testing import create_workflow, run_to_end, serving

CHAIN = 200  # steps of a chain (as W2)
WIDE = 200  # independent steps (as W1, without the join)


def chain() -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"id": "s0", "agent": "echo"}]
    steps += [
        {"id": f"s{i}", "agent": "echo", "depends_on": [f"s{i - 1}"]} for i in range(1, CHAIN)
    ]
    return {"steps": steps}


def wide() -> dict[str, Any]:
    return {"steps": [{"id": f"s{i}", "agent": "echo"} for i in range(WIDE)]}


def traced() -> TelemetryRuntime:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return with_providers(tracer_provider, meter_provider)


async def ms_per_step(telemetry: TelemetryRuntime | None, workflow: str, steps: int) -> float:
    async with serving(telemetry=telemetry) as (_, stubs):
        await create_workflow(stubs, workflow, chain() if workflow == "chain" else wide())
        await run_to_end(stubs, workflow, {})  # warm-up
        began = time.perf_counter()
        await run_to_end(stubs, workflow, {})
        return (time.perf_counter() - began) * 1000 / steps


async def main(rounds: int) -> None:
    for workflow, steps in (("chain", CHAIN), ("wide", WIDE)):
        off: list[float] = []
        on: list[float] = []
        for _ in range(rounds):
            off.append(await ms_per_step(None, workflow, steps))
            on.append(await ms_per_step(traced(), workflow, steps))
        off_ms, on_ms = statistics.median(off), statistics.median(on)
        print(
            f"{workflow:5} {steps} steps: off {off_ms:.3f} ms/step, traced {on_ms:.3f} ms/step, "
            f"overhead {on_ms - off_ms:+.3f} ms/step ({(on_ms / off_ms - 1) * 100:+.0f}%)"
            f"  rounds off {[round(v, 3) for v in off]} on {[round(v, 3) for v in on]}",
            flush=True,
        )


if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
