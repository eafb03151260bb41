"""W10: health checks answered while one request or run is heavy.

A prober in a process of its own (bench/health_probe.py) sends grpc.health.v1
Check every 10 ms while the driver runs one heavy thing after another: a
ValidateWorkflow of a 10,000-step chain (max_steps), a 10,000-item fan-out
(max_fan_out_items), a 1,000-iteration loop (max_loop_iterations), a fan-out
over one item more than allowed (refused), a definition of 100,000 steps
(refused by count or size), runs started one after another with inputs of
nearly max_input_bytes, and runs whose step returns such an input whole (an
output of nearly max_output_bytes). Reported: p99 and max health latency during each.
The rule: p99 under 100 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from bench.gate import percentile
from bench.health_probe import probing
from bench.measure import Measurement
from bench.server import server_process
from bench.workloads import Workload
from podium.core.limits import DEFAULTS
from podium.testing import Stubs, collect_events, echo_step, make_spec, run_to_end, start_run
from podium.v1 import workflow_service_pb2

MAX_P99_MS = 100.0
# Runs started with a large input, one after another.
LARGE_INPUT_RUNS = 5


def _large_input() -> dict[str, Any]:
    """Small maps whose JSON text is just within max_input_bytes: the costliest
    shape per byte to convert (a map and a number per dozen bytes)."""
    items = [{"k": i} for i in range(DEFAULTS.max_input_bytes // 12)]
    while len(json.dumps({"items": items}, separators=(",", ":"))) > DEFAULTS.max_input_bytes:
        del items[-100:]
    return {"items": items}


def _chain(length: int) -> Any:
    steps = [echo_step("s0")] + [
        echo_step(f"s{i}", f"s{i - 1}", input={"x": f"steps.s{i - 1}.output"})
        for i in range(1, length)
    ]
    return make_spec({"steps": steps})


async def _scenarios(stubs: Stubs) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
    W = workflow_service_pb2
    fan_out = {"steps": [echo_step("each", forEach={"items": "input.items"}, input={"v": "item"})]}
    loop = {
        "steps": [
            {
                "id": "count",
                "agent": "echo",
                "input": {"i": "iteration"},
                "loop": {"until": "false", "maxIterations": DEFAULTS.max_loop_iterations},
            }
        ]
    }
    sized = {"steps": [echo_step("count", input={"n": "size(input.items)"})]}
    copied = {"steps": [echo_step("copy", input={"items": "input.items"})]}
    workflows = (("fan", fan_out), ("loop", loop), ("sized", sized), ("copied", copied))
    for workflow_id, spec in workflows:
        await stubs.workflows.CreateWorkflow(
            W.CreateWorkflowRequest(workflow_id=workflow_id, spec=make_spec(spec))
        )
    chain = _chain(DEFAULTS.max_steps)
    huge = _chain(10 * DEFAULTS.max_steps)
    large_input = _large_input()

    async def large_input_runs() -> None:
        for _ in range(LARGE_INPUT_RUNS):
            await run_to_end(stubs, "sized", large_input)

    async def large_output_runs() -> None:
        # Watched to the end, not read back: GetRun of such a run (its input,
        # the step's input and output) is larger than a default client receives.
        for _ in range(LARGE_INPUT_RUNS):
            run = await start_run(stubs, "copied", large_input)
            await collect_events(stubs, run.name)

    async def refused(call: Awaitable[object]) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError):
            await call

    return [
        (
            f"ValidateWorkflow, {DEFAULTS.max_steps}-step chain",
            lambda: stubs.workflows.ValidateWorkflow(W.ValidateWorkflowRequest(spec=chain)),
        ),
        (
            f"fan-out over {DEFAULTS.max_fan_out_items} items",
            lambda: run_to_end(stubs, "fan", {"items": list(range(DEFAULTS.max_fan_out_items))}),
        ),
        (f"{DEFAULTS.max_loop_iterations}-iteration loop", lambda: run_to_end(stubs, "loop")),
        (
            f"fan-out over {DEFAULTS.max_fan_out_items + 1} items (refused)",
            lambda: run_to_end(
                stubs, "fan", {"items": list(range(DEFAULTS.max_fan_out_items + 1))}
            ),
        ),
        (
            f"ValidateWorkflow, {10 * DEFAULTS.max_steps} steps (refused)",
            lambda: refused(stubs.workflows.ValidateWorkflow(W.ValidateWorkflowRequest(spec=huge))),
        ),
        (f"{LARGE_INPUT_RUNS} runs, input of max_input_bytes", large_input_runs),
        (f"{LARGE_INPUT_RUNS} runs, output of max_output_bytes", large_output_runs),
    ]


async def measure_responsiveness(workload: Workload) -> Measurement:
    notes: list[str] = []
    worst_p99 = 0.0
    walls: list[float] = []
    async with server_process() as server:
        async with grpc.aio.insecure_channel(server.address) as driver_channel:
            driver = Stubs.on(driver_channel)
            for name, scenario in await _scenarios(driver):
                async with probing(server.address) as latencies:
                    started = time.perf_counter()
                    await scenario()
                    walls.append(time.perf_counter() - started)
                p99 = percentile(latencies, 0.99) * 1000
                worst_p99 = max(worst_p99, p99)
                notes.append(
                    f"W10 {name}: {walls[-1]:.2f} s; health p99 {p99:.1f} ms, "
                    f"max {max(latencies) * 1000:.1f} ms ({len(latencies)} checks)"
                )
        peak = await server.stop()
    verdict = (
        f"health p99 < {MAX_P99_MS:.0f} ms (worst {worst_p99:.1f} ms)",
        worst_p99 < MAX_P99_MS,
    )
    return Measurement(walls, peak, notes=tuple(notes), verdict=verdict)


if __name__ == "__main__":
    from bench.workloads import by_name

    measurement = asyncio.run(measure_responsiveness(by_name(["W10"])[0]))
    print("\n".join(measurement.notes), measurement.verdict)
