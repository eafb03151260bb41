"""`make demo-governance`: quotas, a circuit breaker and a run budget, live.

A server runs under examples/policy.yaml on a fresh database (removed at the
end, so that spend never carries over from one demo to the next). One run of
examples/governance.yaml shows a fan-out held back by a request quota and a
failing model whose breaker opens, with calls falling back to a smaller one;
then `podium quotas|breakers|budgets|spend`; then the same run again with a
max_cost too small for it: once its spend nears the ceiling, calls are
refused with podium.BudgetExceeded, and the run fails within its budget.
Last, examples/governance-budget.yaml drafts replies on the large model, four
at a time, under the small daily budget replies-daily: calls wait for the
budget (STEP_WAITING budget:replies-daily) while others' worst cases hold
its room, and once replies-monthly is half spent the cheaper model answers
(the LLM_CALL event says why).

Everything goes through the real `podium` CLI, as a user would type it; after
each run, the lines under "what happened" are read from the run's events.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

from podium.client import Client
from podium.client.enums import event_type_label
from podium.client.money import format_usd, to_decimal
from podium.testing import start_server_process
from podium.v1 import event_pb2, run_pb2

ROOT = Path(__file__).resolve().parent.parent
PODIUM = str(Path(sys.executable).with_name("podium"))
POLICY = "examples/policy.yaml"
WORKFLOW = "examples/governance.yaml"
INPUT = "examples/governance-input.json"
BUDGET_WORKFLOW = "examples/governance-budget.yaml"
MAX_COST = "0.0005"
_E = event_pb2
CIRCUIT_EVENTS = (
    _E.RUN_EVENT_TYPE_CIRCUIT_OPENED,
    _E.RUN_EVENT_TYPE_CIRCUIT_HALF_OPEN,
    _E.RUN_EVENT_TYPE_CIRCUIT_CLOSED,
)
# The model each step of the workflow asks for, by step id.
MODELS: dict[str, str] = {
    step["id"]: f"{step['config'].get('provider', 'simulated')}/{step['config']['model']}"
    for path in (WORKFLOW, BUDGET_WORKFLOW)
    for step in yaml.safe_load((ROOT / path).read_text())["spec"]["steps"]
}


def podium(*args: str, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> None:
    print(f"\n$ podium {' '.join(args)}", flush=True)
    result = subprocess.run([PODIUM, *args], cwd=ROOT, env=env, check=False)
    if result.returncode not in ok:
        raise SystemExit(f"demo: `podium {args[0]}` failed (exit {result.returncode})")


def heading(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def await_full_burst(client: Client, quota: str, timeout: float = 30.0) -> None:
    """Waits until `quota`'s bucket holds its whole burst again. Section 4's
    story is the burst after a pause: three calls at once, whose three worst
    cases do not fit the budget together. Started while the bucket is still
    refilling from section 3, the calls go out one by one at the quota's rate,
    and none waits for the budget."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = next(q for q in client.list_quotas() if q.name == quota)
        if state.available >= state.burst:
            return
        time.sleep(0.1)
    raise SystemExit(f"error: quota {quota} did not refill within {timeout:.0f} s")


def latest_run(client: Client, workflow: str = "governance") -> run_pb2.Run:
    return next(iter(client.list_runs(workflow)))


def what_happened(client: Client, run: run_pb2.Run) -> None:
    """The governance the run went through, from its event log, step by step."""
    waits: Counter[tuple[str, str]] = Counter()
    calls: Counter[tuple[str, str]] = Counter()
    routed: dict[tuple[str, str], str] = {}  # why a threshold switched the target, first seen
    failed: Counter[tuple[str, str]] = Counter()
    notices: list[str] = []  # breaker changes and budget warnings, in order
    for event in client.watch(run.name):
        if event.type == _E.RUN_EVENT_TYPE_STEP_WAITING and event.message.startswith(
            ("quota:", "budget:")
        ):
            waits[event.step_id, event.message] += 1
        elif event.type == _E.RUN_EVENT_TYPE_LLM_CALL:
            model = f"{event.provider}/{event.model}"
            calls[event.step_id, model] += 1
            if event.message.startswith("routed to"):
                routed.setdefault((event.step_id, model), event.message)
        elif event.type == _E.RUN_EVENT_TYPE_ITEM_FAILED:
            failed[event.step_id, event.failure.type] += 1
        elif event.type in CIRCUIT_EVENTS:
            state = event_type_label(event.type).removeprefix("CIRCUIT_")
            notices.append(f"{event.step_id}: breaker {event.breaker} {state}: {event.message}")
        elif event.type == _E.RUN_EVENT_TYPE_BUDGET_WARNING:
            notices.append(f"{event.step_id}: BUDGET_WARNING {event.budget}: {event.message}")
    lines = [
        f"{step}: {count} STEP_WAITING {reason} (calls held back by the {reason.partition(':')[0]})"
        for (step, reason), count in waits.items()
    ]
    lines += notices
    for (step, model), count in calls.items():
        asked = MODELS.get(step, "")
        why = routed.get((step, model))
        if why is not None:
            fallback = f" (it asks for {asked}: {why})"
        elif asked not in ("", model):
            fallback = f" (it asks for {asked}: the fallback)"
        else:
            fallback = ""
        lines.append(f"{step}: {count} LLM calls answered by {model}{fallback}")
    lines += [f"{step}: {n} items failed with {failure}" for (step, failure), n in failed.items()]
    final = client.get_run(run.name)
    state = run_pb2.RunState.Name(final.state).removeprefix("RUN_STATE_")
    outcome = f"run {state}"
    if final.HasField("failure"):
        outcome += f" with {final.failure.type}"
    outcome += f", cost {format_usd(final.cost)}"
    if final.HasField("max_cost"):
        limit = to_decimal(final.max_cost)
        kept = "within" if to_decimal(final.cost) <= limit else "OVER"
        outcome += f" ({kept} its max_cost {format_usd(limit)})"
    print("\nwhat happened:")
    for line in [*lines, outcome]:
        print(f"  {line}")
    sys.stdout.flush()


def main() -> int:
    run_input = f"@{INPUT}"
    with tempfile.TemporaryDirectory(prefix="podium-governance-") as tmp:
        db = Path(tmp) / "podium.db"
        server = start_server_process(db, args=("--policy", POLICY), cwd=ROOT, grace=None)
        print(f"$ podium serve --address {server.address} --policy {POLICY}   (a fresh database)")
        env = server.env
        try:
            with Client(server.address) as client:
                podium("workflows", "apply", "-f", WORKFLOW, env=env)

                heading("1. A request quota and a circuit breaker with a fallback")
                podium("runs", "start", "governance", "--input", run_input, "--watch", env=env)
                what_happened(client, latest_run(client))

                heading("2. What governance holds now")
                podium("quotas", env=env)
                podium("breakers", env=env)
                podium("budgets", env=env)
                podium("spend", env=env)

                heading(f"3. A run budget: the same run with --max-cost {MAX_COST} (USD)")
                podium(
                    "runs", "start", "governance", "--input", run_input,
                    "--max-cost", MAX_COST, "--watch",
                    env=env, ok=(1,),  # the run fails: exit 1 is what we expect
                )  # fmt: skip
                what_happened(client, latest_run(client))

                heading("4. A budget that waits, and a cheaper model past a threshold")
                # Section 1 left sim-large's breaker open; the operator closes it.
                podium("breakers", "reset", "model:simulated/sim-large", env=env)
                podium("workflows", "apply", "-f", BUDGET_WORKFLOW, env=env)
                await_full_burst(client, "simulated-requests")
                podium("runs", "start", "replies", "--input", run_input, "--watch", env=env)
                what_happened(client, latest_run(client, "replies"))
                podium("budgets", env=env)
        finally:
            server.stop()
    print("\nserver stopped; its database is gone", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
