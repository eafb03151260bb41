"""The floor: the same DAGs on a bare in-process asyncio executor.

No persistence, no gRPC, no events: a step is a coroutine started as soon as
its last dependency finishes, and passes its output on as Podium's steps do
(bench.workloads.step_output); each run's output is checked as Podium's is.
Whatever Podium takes beyond this is its overhead. Run as
`python -m bench.floor W1` (from the repository root) so that each workload
gets a fresh process and its own peak RSS; prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench.measure import Measurement, own_peak_rss_mb, repeat
from bench.workloads import StepDef, Workload, by_name, expected_outputs, final_steps, step_output


async def run_dag(steps: Sequence[StepDef], max_concurrency: int = 0) -> dict[str, Any]:
    """Runs the DAG; returns its output (the final steps' outputs by id)."""
    by_id = {step.id: step for step in steps}
    outputs: dict[str, dict[str, int]] = {}
    dependents: dict[str, list[str]] = {step.id: [] for step in steps}
    unmet = {step.id: len(step.depends_on) for step in steps}
    for step in steps:
        for dep in step.depends_on:
            dependents[dep].append(step.id)
    delays = {step.id: step.delay_ms / 1000 for step in steps}
    remaining = len(steps)
    done = asyncio.Event()
    # Strong references: the event loop keeps only weak ones to tasks.
    tasks: set[asyncio.Task[None]] = set()

    def start(step_id: str) -> None:
        task = asyncio.create_task(execute(step_id))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    # A fan-out's cap: at most this many steps in flight (0: none).
    cap = asyncio.Semaphore(max_concurrency) if max_concurrency else None

    async def execute(step_id: str) -> None:
        nonlocal remaining
        if cap is not None:
            async with cap:
                await asyncio.sleep(delays[step_id])
        elif delays[step_id]:
            await asyncio.sleep(delays[step_id])
        outputs[step_id] = step_output(by_id[step_id], outputs)
        remaining -= 1
        if remaining == 0:
            done.set()
        for child in dependents[step_id]:
            unmet[child] -= 1
            if unmet[child] == 0:
                start(child)

    for step_id, count in unmet.items():
        if count == 0:
            start(step_id)
    await done.wait()
    return {step.id: outputs[step.id] for step in final_steps(steps)}


async def run_once(workload: Workload) -> float:
    steps = workload.build()
    started = time.perf_counter()
    results = await asyncio.gather(
        *(run_dag(steps, workload.max_concurrency) for _ in range(workload.runs))
    )
    wall = time.perf_counter() - started
    if any(result != expected_outputs(steps) for result in results):
        raise SystemExit(f"{workload.name}: the floor computed a wrong output")
    return wall


async def measure(workload: Workload) -> Measurement:
    walls = await repeat(workload, lambda: run_once(workload))
    return Measurement(walls, own_peak_rss_mb())


def main(argv: Sequence[str]) -> int:
    (workload,) = by_name(argv)
    result = asyncio.run(measure(workload))
    print(json.dumps({"walls_s": result.walls_s, "peak_rss_mb": result.peak_rss_mb}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
