"""The commit floor of a chain: one durable commit per step, and nothing else.

Each step of a chain starts after the one before it has ended, and its
attempt is durable before its agent runs (the hardening rules), so a chain
of n steps waits for at least n commits one after another: a step's end and
its successor's start share one. Measured as a SQLite file of the server's
settings (WAL, synchronous FULL unless bench/run.py --synchronous says
otherwise) in a fresh directory beside the server's: one small row per
commit, as many commits as the chain has steps, per repetition.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.measure import Measurement
from bench.server import SERVE_OPTIONS
from bench.workloads import Workload


def _commits(path: Path, count: int) -> float:
    """Seconds taken by `count` commits of one row each, one after another."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={SERVE_OPTIONS['synchronous'].upper()}")
        connection.execute("CREATE TABLE IF NOT EXISTS steps (id INTEGER PRIMARY KEY, state TEXT)")
        started = time.perf_counter()
        for step in range(count):
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO steps (state) VALUES (?)", (f"step {step}",))
            connection.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        connection.close()


async def measure_commit_floor(workload: Workload) -> Measurement:
    """One repetition per run of the workload's, after a warm-up of the same size."""
    steps = workload.steps_per_run
    with tempfile.TemporaryDirectory(prefix="podium-bench-commits-") as tmp:
        path = Path(tmp) / "commits.db"
        await asyncio.to_thread(_commits, path, steps)
        walls = [
            await asyncio.to_thread(_commits, path, steps) for _ in range(workload.repetitions)
        ]
    per_commit_ms = min(walls) * 1000 / steps
    note = (
        f"{workload.name} commit floor: {per_commit_ms:.3f} ms per commit at best "
        f"(synchronous={SERVE_OPTIONS['synchronous'].upper()}), one per step of the chain"
    )
    # No process of its own: no memory figure (the report prints none).
    return Measurement(walls, 0.0, notes=(note,))
