"""Turns measurements into the printed table and the BENCH_JSON figures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from bench.measure import Measurement
from bench.workloads import Workload

PODIUM = "podium"
FLOOR = "floor"
# The same calls against a server that only answers them (bench/grpc_floor.py).
GRPC_FLOOR = "grpc"
# The commits a chain waits for, one per step (bench/commit_floor.py).
COMMIT_FLOOR = "commits"


@dataclass(frozen=True)
class Row:
    workload: Workload
    system: str  # PODIUM, FLOOR, GRPC_FLOOR or COMMIT_FLOOR
    measurement: Measurement
    floor_wall_s: float | None  # None: the workload has no floor (W7)

    @property
    def wall_s(self) -> float:
        return self.measurement.wall_s

    @property
    def overhead_ms_per_step(self) -> float:
        return (self.wall_s - self.workload.ideal_s) * 1000 / self.workload.total_steps

    @property
    def ratio_to_floor(self) -> float | None:
        return None if self.floor_wall_s is None else self.wall_s / self.floor_wall_s

    @property
    def passed(self) -> bool:
        if self.measurement.verdict is not None:
            return self.measurement.verdict[1]
        return self.workload.target.passes(
            self.wall_s, self.overhead_ms_per_step, self.workload.ideal_s
        )

    def figures(self) -> dict[str, Any]:
        """The BENCH_JSON object: the keys the issue names, nothing more."""
        return {
            "workload": self.workload.name,
            "system": self.system,
            "wall_s": round(self.wall_s, 6),
            "overhead_ms_per_step": round(self.overhead_ms_per_step, 4),
            "peak_rss_mb": round(self.measurement.peak_rss_mb, 1),
        }

    def target_cells(self) -> tuple[str, str]:
        """The target (with how far above the ideal, for workloads with a
        critical path: W3) and, for Podium rows, whether it is met."""
        ideal_s = self.workload.ideal_s
        vs_ideal = f"({self.wall_s / ideal_s - 1:+.1%})" if ideal_s else ""
        if self.system != PODIUM:
            return vs_ideal, ""
        verdict = self.measurement.verdict
        rule = verdict[0] if verdict is not None else self.workload.target.describe(ideal_s)
        target = " ".join(p for p in (rule, vs_ideal) if p)
        return target, "[green]PASS[/]" if self.passed else "[red]FAIL[/]"


def print_table(rows: list[Row], console: Console) -> None:
    table = Table(
        title="Podium vs bare asyncio and bare gRPC (median after one warm-up)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    headers = ("load", "system", "steps", "wall s", "ms/step", "RSS MB", "/floor", "target", "")
    for header in headers:
        numeric = header in ("steps", "wall s", "ms/step", "RSS MB", "/floor")
        table.add_column(header, justify="right" if numeric else "left", no_wrap=True)
    for row in rows:
        table.add_row(
            row.workload.name,
            row.system,
            str(row.workload.total_steps),
            f"{row.wall_s:.4f}",
            f"{row.overhead_ms_per_step:.3f}",
            "-" if row.system == COMMIT_FLOOR else f"{row.measurement.peak_rss_mb:.1f}",
            "-" if row.ratio_to_floor is None else f"{row.ratio_to_floor:.1f}",
            *row.target_cells(),
        )
    console.print(table)
    # A legend rather than a wide column, so that the table fits 80 columns.
    seen = {row.workload.name: row.workload.description for row in rows}
    for name, description in seen.items():
        console.print(f"  {name}: {description}")
    console.print("  ms/step: (wall - ideal) / steps   (+x%): wall over the ideal critical path")
    console.print("  RSS MB: peak of the process that executed the steps (the server for podium)")
    console.print(
        "  grpc: the same calls answered at once by a bare grpc.aio server (bench/grpc_floor.py)"
    )
    console.print("  commits: one SQLite commit per step of the chain (bench/commit_floor.py)")
    for row in rows:
        for note in row.measurement.notes:
            console.print(f"  {note}")


def write_json(rows: list[Row], path: Path) -> None:
    path.write_text(json.dumps([row.figures() for row in rows], indent=2) + "\n")
