"""The two demos of the README, run as `make demo` and `make demo-governance`
run them (the scripts under scripts/, standard input not a terminal): each ends
with exit 0 and shows what the README promises it shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_demo(script: str) -> str:
    env = {**os.environ, "COLUMNS": "200", "PODIUM_DEMO_NO_WAIT": "1"}
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        env.pop(key, None)  # the offline simulated provider, as on a fresh machine
    done = subprocess.run(
        [sys.executable, f"scripts/{script}"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    return done.stdout


def test_make_demo_runs_the_erp_workflow_to_success() -> None:
    out = run_demo("demo.py")
    assert "SUCCEEDED" in out


def test_make_demo_governance_shows_a_budget_wait_and_a_threshold_switch() -> None:
    out = run_demo("demo_governance.py")
    # Section 1: the request quota held calls back and the breaker opened.
    assert re.search(r"\d+ STEP_WAITING quota:", out), out
    assert "breaker model:simulated/sim-large OPENED" in out, out
    # Section 3: the run budget refused calls and the run failed within it.
    assert "within its max_cost" in out and "OVER its max_cost" not in out, out
    # Section 4: calls waited for the budget, and the digest went to the
    # cheaper model once replies-monthly was half spent, saying why.
    assert re.search(r"reply: \d+ STEP_WAITING budget:replies-daily", out), out
    assert re.search(
        r"digest: 1 LLM calls answered by simulated/sim-small \(it asks for "
        r"simulated/sim-large: routed to",
        out,
    ), out
