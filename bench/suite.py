"""Runs every selected workload on the floor, then on Podium (then, for some,
on the gRPC floor and the commit floor: bench/grpc_floor.py, bench/commit_floor.py),
and reports.

Both systems run each workload in a fresh process so that peak RSS is per
workload and per system; the floor first, since its figure divides Podium's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from rich.console import Console

from bench.budget_race import measure_budget_race
from bench.cluster import (
    measure_dag_on_three,
    measure_sustained_on_postgres,
    measure_sustained_on_three,
)
from bench.commit_floor import measure_commit_floor
from bench.gate import measure_gate
from bench.grpc_floor import measure_grpc_floor
from bench.measure import REPO_ROOT, Measurement
from bench.podium_run import (
    measure_dag,
    measure_dag_on_postgres,
    measure_dag_on_worker,
    measure_fan_out,
)
from bench.recovery import measure_recovery
from bench.report import COMMIT_FLOOR, FLOOR, GRPC_FLOOR, PODIUM, Row, print_table, write_json
from bench.responsiveness import measure_responsiveness
from bench.scale import SUSTAINED, measure_idle, measure_live_runs, measure_sustained
from bench.server import SERVE_OPTIONS, BenchError
from bench.subscribers import measure_first_event, measure_many_subscribers
from bench.watchers import measure_watchers
from bench.workloads import WORKLOADS, Workload, by_name

# How Podium runs each kind of workload (Workload.kind).
PODIUM_MEASURES: dict[str, Callable[[Workload], Awaitable[Measurement]]] = {
    "dag": measure_dag,
    "dag_worker": measure_dag_on_worker,
    "dag_postgres": measure_dag_on_postgres,
    "fan_out": measure_fan_out,
    "recovery": measure_recovery,
    "gate": measure_gate,
    "budget_race": measure_budget_race,
    "watchers": measure_watchers,
    "responsiveness": measure_responsiveness,
    "first_event": measure_first_event,
    "many_subscribers": measure_many_subscribers,
    "idle": measure_idle,
    "live_runs": measure_live_runs,
    "sustained": measure_sustained,
    "dag_postgres_cluster": measure_dag_on_three,
    "sustained_postgres": measure_sustained_on_postgres,
    "sustained_postgres_cluster": measure_sustained_on_three,
}


async def measure_floor(workload: Workload) -> Measurement:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.floor",
        workload.name,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise BenchError(f"floor {workload.name} exited with {process.returncode}")
    figures = json.loads(out)
    return Measurement(list(figures["walls_s"]), float(figures["peak_rss_mb"]))


async def run_suite(workloads: list[Workload], console: Console) -> list[Row]:
    rows: list[Row] = []
    for workload in workloads:
        with console.status(f"{workload.name}: {workload.description}"):
            floor = await measure_floor(workload) if workload.has_floor else None
            podium = await PODIUM_MEASURES[workload.kind](workload)
            grpc_floor = await measure_grpc_floor(workload) if workload.grpc_floor else None
            commits = await measure_commit_floor(workload) if workload.commit_floor else None
        floor_wall_s = floor.wall_s if floor is not None else None
        rows.append(Row(workload, PODIUM, podium, floor_wall_s))
        if grpc_floor is not None:
            rows.append(Row(workload, GRPC_FLOOR, grpc_floor, floor_wall_s))
        if commits is not None:
            rows.append(Row(workload, COMMIT_FLOOR, commits, floor_wall_s))
        if floor is not None:
            rows.append(Row(workload, FLOOR, floor, floor_wall_s))
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__)
    parser.add_argument(
        "workloads",
        nargs="*",
        help=f"subset to run (default: all of {[w.name for w in WORKLOADS]})",
    )
    parser.add_argument(
        "--synchronous",
        choices=("full", "normal"),
        default="full",
        help="the servers' `podium serve --synchronous` (default: full)",
    )
    parser.add_argument(
        "--sustained-seconds",
        type=float,
        default=SUSTAINED["seconds"],
        metavar="SECONDS",
        help=f"how long W15 keeps its clients busy (default: {SUSTAINED['seconds']:g})",
    )
    args = parser.parse_args(argv)
    SERVE_OPTIONS["synchronous"] = args.synchronous
    SUSTAINED["seconds"] = args.sustained_seconds
    console = Console()
    console.print(f"podium serve --synchronous {args.synchronous}")
    rows = asyncio.run(run_suite(by_name(args.workloads), console))
    print_table(rows, console)
    json_path = os.environ.get("BENCH_JSON")
    if json_path:
        write_json(rows, Path(json_path))
    # Not a test: a missed target is reported in the table, not as a failure.
    return 0
