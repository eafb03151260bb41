"""The benchmark workloads: a registry that later issues extend.

A workload is a DAG shape plus how many copies of it run at once. The same
shape drives both systems (Podium and the floor), so the two can only differ
in what they add on top of running the steps.

Every step passes its dependencies' outputs on, as in the peer harnesses:
a step returns `{"n": 1 + the sum of its dependencies' n}` (a root: `{"n": 1}`),
and a gathering step (W1's join) returns its dependencies' outputs, one key per
dependency. Both systems compute that, and each checks every run's final
outputs against `expected_outputs`, so a figure never comes from a run that
skipped its work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StepDef:
    id: str
    depends_on: tuple[str, ...] = ()
    delay_ms: int = 0
    # The step's input has one key per dependency (its `n`), and so has its
    # output: an aggregator that reads every output of a wide join.
    gathers: bool = False


def step_output(step: StepDef, outputs: dict[str, dict[str, int]]) -> dict[str, int]:
    """What the step returns given its dependencies' outputs (see the module doc)."""
    if step.gathers:
        return {dep: outputs[dep]["n"] for dep in step.depends_on}
    return {"n": 1 + sum(outputs[dep]["n"] for dep in step.depends_on)}


def final_steps(steps: Sequence[StepDef]) -> list[StepDef]:
    """Steps nothing depends on: their outputs are the run's output."""
    needed = {dep for step in steps for dep in step.depends_on}
    return [step for step in steps if step.id not in needed]


def expected_outputs(steps: Sequence[StepDef]) -> dict[str, dict[str, int]]:
    """The run's output: every final step's output, by step id."""
    outputs: dict[str, dict[str, int]] = {}
    by_id = {step.id: step for step in steps}

    def output(step_id: str) -> dict[str, int]:
        if step_id not in outputs:
            step = by_id[step_id]
            for dep in step.depends_on:
                output(dep)
            outputs[step_id] = step_output(step, outputs)
        return outputs[step_id]

    for step in steps:  # definition order keeps the recursion shallow (W2)
        output(step.id)
    return {step.id: outputs[step.id] for step in final_steps(steps)}


@dataclass(frozen=True)
class Target:
    """The issue's pass/fail rule for a Podium row: a per-step overhead ceiling,
    or a ceiling on the wall time relative to the ideal (critical path)."""

    max_overhead_ms_per_step: float | None = None
    max_excess_over_ideal: float | None = None  # 0.05 = within 5% of the ideal

    def passes(self, wall_s: float, overhead_ms_per_step: float, ideal_s: float) -> bool:
        if self.max_overhead_ms_per_step is not None:
            return overhead_ms_per_step <= self.max_overhead_ms_per_step
        if self.max_excess_over_ideal is not None:
            return wall_s <= ideal_s * (1 + self.max_excess_over_ideal)
        return True

    def describe(self, ideal_s: float) -> str:
        if self.max_overhead_ms_per_step is not None:
            return f"≤{self.max_overhead_ms_per_step:g} ms/step"
        if self.max_excess_over_ideal is not None:
            ceiling_ms = ideal_s * (1 + self.max_excess_over_ideal) * 1000
            return f"≤{ceiling_ms:g} ms"
        return "-"


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    build: Callable[[], list[StepDef]]
    target: Target
    runs: int = 1  # copies of the DAG started at once, each with its own subscriber
    repetitions: int = 5  # timed repetitions; the median is reported
    # How Podium runs it: "dag" (one step per StepDef), "fan_out" (one for_each
    # step whose items are the StepDefs, at most `max_concurrency` at once) or
    # "recovery" (unfinished runs of the DAG resumed by a restarted server),
    # "gate" (the governance gate in-process, bench/gate.py) or "budget_race"
    # (a fan-out of `llm` calls against one run budget, bench/budget_race.py),
    # "dag_worker" (as "dag", each step's agent run by one worker process),
    # "dag_postgres" (as "dag", the server on a PostgreSQL database),
    # "dag_postgres_cluster", "sustained_postgres", "sustained_postgres_cluster"
    # (bench/cluster.py).
    kind: str = "dag"
    max_concurrency: int = 0  # 0: unbounded; the floor honours it too
    # False where a bare asyncio executor has nothing to compare with (W7).
    has_floor: bool = True
    # "dag_worker": the attempts a worker process runs at once.
    worker_concurrency: int = 0
    # Also measured against a server that only answers the client's calls
    # (bench/grpc_floor.py): what the calls alone cost.
    grpc_floor: bool = False
    # A chain: also the commits it must wait for, one per step (bench/commit_floor.py).
    commit_floor: bool = False

    @property
    def steps_per_run(self) -> int:
        return len(self.build())

    @property
    def total_steps(self) -> int:
        return self.steps_per_run * self.runs

    @property
    def ideal_s(self) -> float:
        """Wall time with zero overhead: the DAG's critical path (concurrent
        runs overlap entirely, so it is also the ideal for all of them), with
        at most `max_concurrency` steps at once when the run is capped."""
        return critical_path_ms(self.build(), self.max_concurrency) / 1000


def critical_path_ms(steps: Sequence[StepDef], max_concurrency: int = 0) -> int:
    if max_concurrency:
        return _capped_schedule_ms(steps, max_concurrency)
    by_id = {step.id: step for step in steps}
    finish: dict[str, int] = {}

    def finish_ms(step_id: str) -> int:
        if step_id not in finish:
            step = by_id[step_id]
            start = max((finish_ms(dep) for dep in step.depends_on), default=0)
            finish[step_id] = start + step.delay_ms
        return finish[step_id]

    # Iterating in definition order keeps the recursion shallow for chains
    # defined head first (W2 would otherwise recurse 200 deep).
    return max((finish_ms(step.id) for step in steps), default=0)


def _capped_schedule_ms(steps: Sequence[StepDef], cap: int) -> int:
    """The makespan of starting ready steps, in definition order, whenever
    fewer than `cap` are running (what both systems do with a capped run)."""
    finish: dict[str, int] = {}
    pending = list(steps)
    now = 0
    while pending:
        running = sum(1 for end in finish.values() if end > now)
        for step in [
            s for s in pending if all(finish.get(d, now + 1) <= now for d in s.depends_on)
        ]:
            if running >= cap:
                break
            finish[step.id] = now + step.delay_ms
            pending.remove(step)
            running += 1
        later = [end for end in finish.values() if end > now]
        if pending and later:
            now = min(later)  # the next moment a slot or a dependency frees up
    return max(finish.values(), default=0)


def fan_in(width: int, delay_ms: int = 0) -> list[StepDef]:
    leaves = [StepDef(f"leaf_{i}", delay_ms=delay_ms) for i in range(width)]
    return [*leaves, StepDef("join", tuple(leaf.id for leaf in leaves), gathers=True)]


def chain(length: int) -> list[StepDef]:
    return [StepDef(f"s_{i}", (f"s_{i - 1}",) if i else ()) for i in range(length)]


def diamond() -> list[StepDef]:
    return [
        StepDef("a"),
        StepDef("b", ("a",)),
        StepDef("c", ("a",)),
        StepDef("d", ("a",)),
        StepDef("e", ("b", "c", "d")),
    ]


# The shape of examples/erp.yaml: three department chains feeding a compliance
# check, then an audit. Critical path: five steps (e.g. the finance chain).
ERP_EDGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("resume_parse", ()),
    ("screen", ("resume_parse",)),
    ("schedule", ("screen",)),
    ("invoice", ()),
    ("payment", ("invoice",)),
    ("reconcile", ("payment",)),
    ("stock_analysis", ()),
    ("reorder", ("stock_analysis",)),
    ("supplier_select", ("reorder",)),
    ("policy_check", ("screen", "reconcile", "supplier_select")),
    ("audit_report", ("policy_check",)),
)


def erp(delay_ms: int) -> list[StepDef]:
    return [StepDef(step_id, deps, delay_ms) for step_id, deps in ERP_EDGES]


# The per-step ceiling of W1, W2 and W4 (durable, over gRPC, from the client).
NO_OP_TARGET = Target(max_overhead_ms_per_step=0.1)

WORKLOADS: list[Workload] = [
    Workload(
        "W1",
        "500 no-op steps fanning into one that reads all 500 outputs",
        lambda: fan_in(500),
        NO_OP_TARGET,
        grpc_floor=True,
    ),
    Workload(
        "W1s",
        "W1 with 20 ms leaves, run max_concurrency 100",
        lambda: fan_in(500, delay_ms=20),
        Target(),
        max_concurrency=100,
    ),
    Workload(
        "W2",
        "200-step chain",
        lambda: chain(200),
        NO_OP_TARGET,
        grpc_floor=True,
        commit_floor=True,
    ),
    Workload("W3", "ERP DAG, 50 ms per step", lambda: erp(50), Target(max_excess_over_ideal=0.02)),
    Workload(
        "W4",
        "100 concurrent 5-step diamonds",
        diamond,
        NO_OP_TARGET,
        runs=100,
        repetitions=3,
        grpc_floor=True,
    ),
]


def items(count: int) -> list[StepDef]:
    """A fan-out's items, as independent no-op steps (for the floor and the counts)."""
    return [StepDef(f"item_{i}") for i in range(count)]


def resumable() -> list[StepDef]:
    """A durable wait, already due when the server restarts, then a no-op step."""
    return [StepDef("pause"), StepDef("after", ("pause",))]


WORKLOADS += [
    Workload(
        "W5",
        "1,000 unfinished runs resumed by a restarted server",
        resumable,
        Target(),
        runs=1000,
        repetitions=1,
        kind="recovery",
    ),
    Workload(
        "W6",
        "10,000-item fan-out, max_concurrency 100",
        lambda: items(10_000),
        Target(),
        repetitions=3,
        kind="fan_out",
        max_concurrency=100,
    ),
]


def calls(count: int, delay_ms: int) -> list[StepDef]:
    """Independent LLM calls of `delay_ms` each (the floor sleeps that long)."""
    return [StepDef(f"call_{i}", delay_ms=delay_ms) for i in range(count)]


WORKLOADS += [
    Workload(
        "W7",
        "governance gate per LLM call, in-process (20,000 calls)",
        lambda: items(20_000),
        Target(),
        repetitions=1,
        kind="gate",
        has_floor=False,
    ),
    Workload(
        "W8",
        "200 concurrent llm calls (20 ms) racing for one run budget",
        lambda: calls(200, 20),
        Target(),
        repetitions=3,
        kind="budget_race",
        max_concurrency=200,
    ),
]


WORKLOADS += [
    Workload(
        "W9",
        "6,000-item fan-out watched by 200 WatchRun subscribers, 100 never reading",
        lambda: items(6_000),
        Target(),
        runs=200,  # subscribers
        repetitions=1,
        kind="watchers",
        max_concurrency=100,
        has_floor=False,
    ),
    Workload(
        "W10",
        "health p99 during a 10,000-step validation, fan-out, loop and input at the limits",
        lambda: items(1),
        Target(),
        repetitions=1,
        kind="responsiveness",
        has_floor=False,
    ),
]


# W2 and W4 again, their `echo` steps run by one `podium worker` process
# (the server delegates every attempt over WorkerService): the cost of running
# agents out of process, beside the in-process rows.
WORKLOADS += [
    Workload(
        "W2w",
        "200-step chain, echo run by one Python worker process",
        lambda: chain(200),
        Target(),
        kind="dag_worker",
        worker_concurrency=1,
    ),
    Workload(
        "W4w",
        "100 concurrent 5-step diamonds, echo run by one Python worker process",
        diamond,
        Target(),
        runs=100,
        repetitions=3,
        kind="dag_worker",
        worker_concurrency=300,
    ),
]


# What a subscriber sees (bench/subscribers.py).
WORKLOADS += [
    Workload(
        "W11",
        "first event to a WatchRun called right after StartRun returned (200 runs)",
        lambda: [StepDef("only")],
        Target(),
        runs=200,
        repetitions=1,
        kind="first_event",
        has_floor=False,
    ),
    Workload(
        "W12",
        "200-step chain watched by 100 subscribers vs by one (the last one's wall)",
        lambda: chain(200),
        Target(),
        runs=100,  # subscribers
        repetitions=5,
        kind="many_subscribers",
        has_floor=False,
    ),
]


# Scale (bench/scale.py): memory at idle and with many live runs, and
# throughput sustained by many clients.
WORKLOADS += [
    Workload(
        "W13",
        "server RSS at idle (serving, no call but health)",
        lambda: [StepDef("idle")],
        Target(),
        repetitions=1,
        kind="idle",
        has_floor=False,
    ),
    Workload(
        "W14",
        "10,000 concurrent live runs, each waiting for an approval: server RSS",
        lambda: [StepDef("gate"), StepDef("after", ("gate",))],
        Target(),
        runs=10_000,
        repetitions=1,
        kind="live_runs",
        has_floor=False,
    ),
    Workload(
        "W15",
        "5-step diamonds, 50 clients each starting and watching one run at a time",
        diamond,
        Target(),
        repetitions=1,
        kind="sustained",
        has_floor=False,
        grpc_floor=True,
    ),
]


# W2 and W4 again on PostgreSQL (`podium serve --db postgresql://...`, one
# server, PostgreSQL's default durability: fsync on, synchronous_commit on),
# beside the rows on SQLite (synchronous=FULL by default).
WORKLOADS += [
    Workload(
        "W2pg",
        "200-step chain, on PostgreSQL",
        lambda: chain(200),
        NO_OP_TARGET,
        kind="dag_postgres",
        has_floor=False,
    ),
    Workload(
        "W4pg",
        "100 concurrent 5-step diamonds, on PostgreSQL",
        diamond,
        NO_OP_TARGET,
        runs=100,
        repetitions=3,
        kind="dag_postgres",
        has_floor=False,
    ),
]


# Cluster mode on PostgreSQL (bench/cluster.py): W4 with three `podium serve
# --cluster` servers on one database (W4pg is the same with one server), and
# W15's sustained throughput with one server and with three (the clients and
# runs spread round-robin over the servers).
WORKLOADS += [
    Workload(
        "W4pg3",
        "100 concurrent 5-step diamonds, three cluster servers on one PostgreSQL",
        diamond,
        NO_OP_TARGET,
        runs=100,
        repetitions=3,
        kind="dag_postgres_cluster",
        has_floor=False,
    ),
    Workload(
        "W15pg",
        "W15 (sustained, 50 clients) on PostgreSQL, one server",
        diamond,
        Target(),
        repetitions=1,
        kind="sustained_postgres",
        has_floor=False,
    ),
    Workload(
        "W15pg3",
        "W15 (sustained, 50 clients) on PostgreSQL, three cluster servers",
        diamond,
        Target(),
        repetitions=1,
        kind="sustained_postgres_cluster",
        has_floor=False,
    ),
]


def by_name(names: Sequence[str]) -> list[Workload]:
    """The named workloads in registry order; all of them when `names` is empty."""
    known = {w.name: w for w in WORKLOADS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown workload(s) {unknown}; known: {sorted(known)}")
    return [w for w in WORKLOADS if not names or w.name in names]
