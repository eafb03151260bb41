"""Timing and memory helpers shared by both systems."""

from __future__ import annotations

import math
import os
import resource
import statistics
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.workloads import Workload

# Where the benchmark runs its modules as processes of their own (`python -m bench.floor`).
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Measurement:
    walls_s: list[float]  # one per timed repetition
    peak_rss_mb: float  # of the process that executed the workload
    notes: tuple[str, ...] = field(default=())  # further figures, printed under the table
    # (target, met) when the workload's pass rule is not about time per step
    # (W7: a median per call, W8: spend within a budget); overrides its Target.
    verdict: tuple[str, bool] | None = None

    @property
    def wall_s(self) -> float:
        return statistics.median(self.walls_s)


async def repeat(
    workload: Workload,
    once: Callable[[], Awaitable[float]],
    timing: Callable[[], None] | None = None,
) -> list[float]:
    """Wall times of the timed repetitions, after one untimed warm-up run
    (imports, caches, first connections and SQLite pages are paid there);
    `timing` is called once the warm-up is done."""
    await once()
    if timing is not None:
        timing()
    return [await once() for _ in range(workload.repetitions)]


def own_peak_rss_mb() -> float:
    """This process's peak resident set size, in MB."""
    # VmHWM, not ru_maxrss, where there is one: Linux carries ru_maxrss across
    # exec, so a child forked from the benchmark would report the benchmark's
    # own footprint as its floor.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in kilobytes on Linux but in bytes on macOS.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def cpu_seconds_of(pid: int) -> float:
    """CPU time another process has used so far (user and system, all its
    threads), in seconds: Linux only (NaN elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # Fields after the command name, which may hold spaces: utime, stime are 14, 15.
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb_of(pid: int) -> float:
    """Another process's peak resident set size so far, in MB: its VmHWM,
    which only Linux exposes (NaN elsewhere, shown as such in the table)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan
