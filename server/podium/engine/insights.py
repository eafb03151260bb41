"""Insights from a workflow's history: per-step statistics, the critical
path by observed durations, and recommendations, each with its evidence and
an estimated saving. Pure: it reads finished runs (their steps, attempts and
a few kinds of events) handed to it; every figure comes from them.

The recommendations and the data that triggers each:

- bottleneck: a step holding at least half of the observed critical path;
- flaky: a step of which at least a fifth of executions needed a retry;
- cost: a step with at least half of the workflow's cost, with a cheaper
  model of the same provider priced on the step's own token usage;
- dependency: a `depends_on` none of whose output the step reads (its CEL
  references), that finished last among its dependencies and so delayed it;
- concurrency: steps that waited for a slot (p95 over 50 ms and a tenth of
  their p50 duration): a `max_concurrency` that fits the observed peak;
- cache: a step without `cache` that ran again with an identical input.

With fewer than MIN_RUNS finished runs the statistics are given and no
recommendation is made (the response says so).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from podium.core.model import AttemptRecord, Event, RunRecord, StepRecord, Usage
from podium.core.states import AttemptState, EventType, StepState
from podium.engine.validation import Plan

MIN_RUNS = 5
BOTTLENECK_SHARE = 0.5
FLAKY_RETRY_RATE = 0.2
COST_SHARE = 0.5
QUEUE_WAIT_FLOOR = 0.05
QUEUE_WAIT_SHARE = 0.1
CACHE_REPEAT_RATE = 0.2
MAX_SUGGESTED_ATTEMPTS = 5
# The event types insights read besides steps and attempts.
EVENT_TYPES = (EventType.LLM_CALL, EventType.STEP_WAITING, EventType.STEP_PROGRESS)


@dataclass(frozen=True, slots=True)
class RunHistory:
    """A finished run as insights read it."""

    run: RunRecord
    steps: list[StepRecord]
    # Its LLM_CALL, STEP_WAITING and STEP_PROGRESS events, in sequence order.
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """What the price table says a model costs (for cheaper-model advice)."""

    provider: str
    model: str
    input: Decimal  # USD per million input tokens
    output: Decimal  # USD per million output tokens

    def cost(self, usage: Usage) -> Decimal:
        return (usage.input_tokens * self.input + usage.output_tokens * self.output) / 1_000_000


@dataclass(frozen=True, slots=True)
class StepInsight:
    step_id: str
    agent: str
    # Runs in which the step ran its agent (plain steps) or an item of it.
    executions: int
    p50_duration: float
    p95_duration: float
    p50_queue_wait: float
    p95_queue_wait: float
    p50_quota_wait: float
    p95_quota_wait: float
    # Executions that needed more than one attempt / that ended FAILED.
    retry_rate: float
    failure_rate: float
    failure_types: dict[str, int]
    cost_share: float
    mean_cost: Decimal


@dataclass(frozen=True, slots=True)
class Recommendation:
    kind: str  # bottleneck, flaky, cost, dependency, concurrency, cache
    step_id: str
    summary: str
    evidence: str
    # Estimated per run.
    saving_seconds: float = 0.0
    saving_cost: Decimal = Decimal(0)
    # The change to the workflow, in its YAML form, when there is one.
    suggestion: str = ""


@dataclass(frozen=True, slots=True)
class Insights:
    workflow_id: str
    runs: int
    enough_history: bool
    note: str
    p50_run_duration: float
    p95_run_duration: float
    p50_run_cost: Decimal
    p95_run_cost: Decimal
    steps: list[StepInsight]
    critical_path: list[str]
    critical_path_duration: float
    recommendations: list[Recommendation]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in (0, 1]); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def compute(
    workflow_id: str,
    plan: Plan,
    histories: Sequence[RunHistory],
    *,
    prices: Iterable[ModelPrice] = (),
    max_concurrency: int = 0,
) -> Insights:
    """Insights of `plan`'s workflow from its finished runs. `max_concurrency`:
    the limit a run of it gets when it sets none (the server's default)."""
    runs = len(histories)
    durations = [_run_duration(h.run) for h in histories]
    costs = [h.run.cost for h in histories]
    total_cost = sum(costs, Decimal(0))
    stats = {step_id: _StepStats.of(step_id, histories) for step_id in plan.steps}
    steps = [stats[s.id].insight(total_cost, runs) for s in plan.spec.steps]
    weights = {s.step_id: s.p50_duration for s in steps}
    path, length = longest_path(plan, weights)
    enough = runs >= MIN_RUNS
    note = (
        f"{runs} finished runs analysed"
        if enough
        else f"only {runs} finished run{'' if runs == 1 else 's'}; "
        f"recommendations need at least {MIN_RUNS}"
    )
    recommendations: list[Recommendation] = []
    if enough:
        recommendations += _bottlenecks(plan, weights, path, length)
        recommendations += _flaky(plan, stats)
        recommendations += _cost_hotspots(plan, stats, steps, histories, list(prices))
        recommendations += _needless_dependencies(plan, histories)
        recommendations += _saturation(plan, steps, path, histories, max_concurrency)
        recommendations += _cache(plan, stats, runs)
    return Insights(
        workflow_id=workflow_id,
        runs=runs,
        enough_history=enough,
        note=note,
        p50_run_duration=percentile(durations, 0.5),
        p95_run_duration=percentile(durations, 0.95),
        p50_run_cost=_decimal_percentile(costs, 0.5),
        p95_run_cost=_decimal_percentile(costs, 0.95),
        steps=steps,
        critical_path=path,
        critical_path_duration=length,
        recommendations=recommendations,
    )


def longest_path(plan: Plan, weights: dict[str, float]) -> tuple[list[str], float]:
    """The heaviest chain of dependent steps (weights: seconds)."""
    best: dict[str, tuple[float, list[str]]] = {}
    for level in plan.levels:
        for step_id in level:
            before = max(
                (best[d] for d in plan.dependencies.get(step_id, ()) if d in best),
                key=lambda entry: entry[0],
                default=(0.0, []),
            )
            best[step_id] = (before[0] + weights.get(step_id, 0.0), [*before[1], step_id])
    if not best:
        return [], 0.0
    length, path = max(best.values(), key=lambda entry: entry[0])
    return path, length


# -- per-step statistics ------------------------------------------------------------------


@dataclass
class _StepStats:
    step_id: str
    agent: str = ""
    durations: list[float] = field(default_factory=list)
    queue_waits: list[float] = field(default_factory=list)
    quota_waits: list[float] = field(default_factory=list)
    # Per execution (a plain step's run, or one item): its attempts in order.
    executions: list[list[AttemptRecord]] = field(default_factory=list)
    failed_runs: int = 0
    ran: int = 0
    costs: list[Decimal] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    # (workflow version, input as canonical JSON) of each successful run, with its time.
    inputs: list[tuple[tuple[int, str], float, float, Decimal]] = field(default_factory=list)

    @classmethod
    def of(cls, step_id: str, histories: Sequence[RunHistory]) -> _StepStats:
        stats = cls(step_id)
        for history in histories:
            step = next((s for s in history.steps if s.step_id == step_id), None)
            if step is None or not step.attempts:
                continue
            stats.agent = step.agent
            stats.ran += 1
            if step.start_time is not None and step.end_time is not None:
                stats.durations.append(max(0.0, step.end_time - step.start_time))
            first = min(step.attempts, key=lambda a: a.start_time)
            if step.start_time is not None:
                stats.queue_waits.append(max(0.0, first.start_time - step.start_time))
            stats.quota_waits.append(_quota_wait(history.events, step_id))
            by_item: dict[int, list[AttemptRecord]] = defaultdict(list)
            for attempt in step.attempts:
                by_item[attempt.item].append(attempt)
            stats.executions += [sorted(a, key=lambda x: x.number) for a in by_item.values()]
            if step.state == StepState.FAILED:
                stats.failed_runs += 1
            stats.costs.append(step.cost)
            stats.usage.add(step.usage)
            if step.state == StepState.SUCCEEDED and step.end_time is not None:
                key = (history.run.workflow_version, _canonical(step.input))
                duration = step.end_time - (step.start_time or step.end_time)
                stats.inputs.append((key, step.end_time, duration, step.cost))
        return stats

    def retried(self) -> list[list[AttemptRecord]]:
        return [e for e in self.executions if len(e) > 1]

    def failure_types(self) -> Counter[str]:
        return Counter(
            a.failure.type
            for execution in self.executions
            for a in execution
            if a.failure is not None and a.state == AttemptState.FAILED
        )

    def insight(self, total_cost: Decimal, runs: int) -> StepInsight:
        executions = len(self.executions)
        step_cost = sum(self.costs, Decimal(0))
        return StepInsight(
            step_id=self.step_id,
            agent=self.agent,
            executions=self.ran,
            p50_duration=percentile(self.durations, 0.5),
            p95_duration=percentile(self.durations, 0.95),
            p50_queue_wait=percentile(self.queue_waits, 0.5),
            p95_queue_wait=percentile(self.queue_waits, 0.95),
            p50_quota_wait=percentile(self.quota_waits, 0.5),
            p95_quota_wait=percentile(self.quota_waits, 0.95),
            retry_rate=len(self.retried()) / executions if executions else 0.0,
            failure_rate=self.failed_runs / self.ran if self.ran else 0.0,
            failure_types=dict(self.failure_types()),
            cost_share=float(step_cost / total_cost) if total_cost else 0.0,
            mean_cost=step_cost / runs if runs else Decimal(0),
        )


# -- recommendations --------------------------------------------------------------------


def _bottlenecks(
    plan: Plan, weights: dict[str, float], path: list[str], length: float
) -> list[Recommendation]:
    if len(plan.steps) < 2 or length <= 0:
        return []
    found = []
    for step_id in path:
        share = weights[step_id] / length
        if share < BOTTLENECK_SHARE:
            continue
        _, without = longest_path(plan, {**weights, step_id: 0.0})
        found.append(
            Recommendation(
                kind="bottleneck",
                step_id=step_id,
                summary=f"{step_id} is {share:.0%} of the critical path",
                evidence=f"p50 {weights[step_id]:.3g}s of the critical path's {length:.3g}s "
                f"({' -> '.join(path)})",
                saving_seconds=length - without,
                suggestion="speed this step up (a faster model, less output, split it); "
                f"runs shorten by up to {length - without:.3g}s",
            )
        )
    return found


def _flaky(plan: Plan, stats: dict[str, _StepStats]) -> list[Recommendation]:
    found = []
    for step_id, step in stats.items():
        executions = len(step.executions)
        retried = step.retried()
        if executions < MIN_RUNS or len(retried) / executions < FLAKY_RETRY_RATE:
            continue
        types = step.failure_types()
        lost = [
            e[-1].start_time - e[0].start_time
            for e in retried
            if e[-1].state == AttemptState.SUCCEEDED
        ]
        failed_cost = sum(
            (a.cost for e in retried for a in e if a.state != AttemptState.SUCCEEDED), Decimal(0)
        )
        needed = max(
            (len(e) for e in step.executions if e[-1].state == AttemptState.SUCCEEDED), default=1
        )
        attempts = min(MAX_SUGGESTED_ATTEMPTS, max(3, needed + 1))
        names = ", ".join(sorted(types))
        has_policy = bool(plan.steps[step_id].spec.retry)
        suggestion = (
            f"retry: [{{error_equals: [{names}], interval: 1s, backoff_rate: 2, "
            f"max_attempts: {attempts}}}]"
            if not has_policy or step.failed_runs
            else "the retry policy absorbs these failures: fix their cause to save the time"
        )
        found.append(
            Recommendation(
                kind="flaky",
                step_id=step_id,
                summary=f"{step_id} needed a retry in {len(retried)} of {executions} executions",
                evidence=f"retry rate {len(retried) / executions:.0%}; failures: "
                + ", ".join(f"{t} x{n}" for t, n in types.most_common())
                + f"; {step.failed_runs} of {step.ran} runs failed the step",
                saving_seconds=sum(lost) / executions,
                saving_cost=failed_cost / executions,
                suggestion=suggestion,
            )
        )
    return found


def _cost_hotspots(
    plan: Plan,
    stats: dict[str, _StepStats],
    steps: list[StepInsight],
    histories: Sequence[RunHistory],
    prices: list[ModelPrice],
) -> list[Recommendation]:
    if len(plan.steps) < 2:
        return []
    found = []
    for insight in steps:
        if insight.cost_share < COST_SHARE:
            continue
        calls = [
            e
            for h in histories
            for e in h.events
            if e.type == EventType.LLM_CALL and e.step_id == insight.step_id
        ]
        models = Counter((e.provider, e.model) for e in calls)
        usage = Usage()
        for e in calls:
            if e.usage is not None:
                usage.add(e.usage)
        suggestion, saving = "lower max_tokens or shorten the prompt", Decimal(0)
        stat = stats[insight.step_id]
        # Only a step that reliably succeeds is a candidate for a smaller model.
        if len(models) == 1 and stat.failed_runs == 0:
            ((provider, model),) = models
            current = next((p for p in prices if (p.provider, p.model) == (provider, model)), None)
            cheaper = sorted(
                (p for p in prices if p.provider == provider and p.model != model),
                key=lambda p: p.cost(usage),
            )
            if current is not None and cheaper and cheaper[0].cost(usage) < current.cost(usage):
                runs = len(histories)
                saving = (current.cost(usage) - cheaper[0].cost(usage)) / runs
                suggestion = f"config: {{provider: {provider}, model: {cheaper[0].model}}}"
        found.append(
            Recommendation(
                kind="cost",
                step_id=insight.step_id,
                summary=f"{insight.step_id} is {insight.cost_share:.0%} of the workflow's cost",
                evidence=f"mean ${insight.mean_cost:.6f} a run; {len(calls)} LLM calls to "
                + ", ".join(f"{p}/{m}" for p, m in models)
                + f"; {usage.input_tokens} input and {usage.output_tokens} output tokens",
                saving_cost=saving,
                suggestion=suggestion,
            )
        )
    return found


def _needless_dependencies(plan: Plan, histories: Sequence[RunHistory]) -> list[Recommendation]:
    found = []
    for step_id, dependencies in plan.dependencies.items():
        refs = plan.steps[step_id].refs
        for dependency in dependencies:
            if dependency in refs or not _refs_still_ancestors(plan, step_id, dependency):
                continue
            delays = []
            for history in histories:
                ends = {s.step_id: s.end_time for s in history.steps}
                end = ends.get(dependency)
                others = [ends.get(d) for d in dependencies if d != dependency]
                if end is None or any(o is None for o in others):
                    continue
                floor = max([o for o in others if o is not None], default=history.run.start_time)
                delays.append(max(0.0, end - (floor or end)))
            delayed = [d for d in delays if d > 0]
            if len(delayed) * 2 < max(1, len(delays)):
                continue
            saving = percentile(delays, 0.5)
            found.append(
                Recommendation(
                    kind="dependency",
                    step_id=step_id,
                    summary=f"{step_id} waits for {dependency} but reads none of its output",
                    evidence=f"no expression of {step_id} reads steps.{dependency}; "
                    f"{dependency} finished last among its dependencies in {len(delayed)} "
                    f"of {len(delays)} runs, p50 {saving:.3g}s after the others",
                    saving_seconds=saving,
                    suggestion=f"remove {dependency} from {step_id}.depends_on "
                    "(unless the order matters for a side effect)",
                )
            )
    return found


def _saturation(
    plan: Plan,
    steps: list[StepInsight],
    path: list[str],
    histories: Sequence[RunHistory],
    default_limit: int,
) -> list[Recommendation]:
    waiting = [
        s
        for s in steps
        if s.p95_queue_wait > QUEUE_WAIT_FLOOR
        and s.p95_queue_wait > QUEUE_WAIT_SHARE * s.p50_duration
    ]
    if not waiting:
        return []
    peak = max((_peak_ready(h) for h in histories), default=0)
    limit = plan.spec.max_concurrency or default_limit
    on_path = sum(s.p50_queue_wait for s in waiting if s.step_id in path)
    names = ", ".join(s.step_id for s in waiting)
    return [
        Recommendation(
            kind="concurrency",
            step_id=waiting[0].step_id,
            summary=f"steps waited for a slot: {names}",
            evidence="p95 slot waits "
            + ", ".join(f"{s.step_id} {s.p95_queue_wait:.3g}s" for s in waiting)
            + f"; up to {peak} steps were ready at once; the limit is {limit or 'unset'}",
            saving_seconds=on_path,
            suggestion=f"max_concurrency: {max(peak, 1)} (or raise the server's step limit "
            "if it is the server that is full)",
        )
    ]


def _cache(plan: Plan, stats: dict[str, _StepStats], runs: int) -> list[Recommendation]:
    found = []
    for step_id, step in stats.items():
        if plan.steps[step_id].spec.cache is not None or not step.inputs:
            continue
        groups: dict[tuple[int, str], list[tuple[float, float, Decimal]]] = defaultdict(list)
        for key, end, duration, cost in step.inputs:
            groups[key].append((end, duration, cost))
        repeats = [sorted(g)[1:] for g in groups.values() if len(g) > 1]
        repeated = [r for group in repeats for r in group]
        if not repeated or len(repeated) / len(step.inputs) < CACHE_REPEAT_RATE:
            continue
        spread = max(max(e for e, _, _ in g) - min(e for e, _, _ in g) for g in groups.values())
        ttl = max(60, math.ceil(spread / 60) * 60)
        found.append(
            Recommendation(
                kind="cache",
                step_id=step_id,
                summary=f"{step_id} ran {len(repeated)} times again with an identical input",
                evidence=f"{len(repeated)} of {len(step.inputs)} successful runs repeated an "
                f"earlier input of the same workflow version (agent {step.agent})",
                saving_seconds=sum(d for _, d, _ in repeated) / runs,
                saving_cost=sum((c for _, _, c in repeated), Decimal(0)) / runs,
                suggestion=f"cache: {{ttl: {ttl}s}}",
            )
        )
    return found


# -- helpers ------------------------------------------------------------------------------


def _refs_still_ancestors(plan: Plan, step_id: str, dropped: str) -> bool:
    """Whether every step `step_id` reads stays its ancestor without the
    edge dropped -> step_id (else the dependency is needed)."""
    refs = plan.steps[step_id].refs
    if not refs:
        return True
    seen: set[str] = set()
    stack = [d for d in plan.dependencies.get(step_id, ()) if d != dropped]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack.extend(plan.dependencies.get(current, ()))
    return refs <= seen


def _quota_wait(events: list[Event], step_id: str) -> float:
    """Seconds a step's calls waited for quotas (STEP_WAITING quota:… until resumed)."""
    total, since = 0.0, None
    for event in events:
        if event.step_id != step_id:
            continue
        if event.type == EventType.STEP_WAITING and event.message.startswith("quota:"):
            since = event.time if since is None else since
        elif (
            event.type == EventType.STEP_PROGRESS
            and since is not None
            and event.message.startswith("resumed after quota:")
        ):
            total += event.time - since
            since = None
    return total


def _peak_ready(history: RunHistory) -> int:
    """The most steps of a run that were started (ready or running) at once."""
    edges = []
    for step in history.steps:
        if step.start_time is not None and step.end_time is not None and step.attempts:
            edges += [(step.start_time, 1), (step.end_time, -1)]
    peak = current = 0
    for _, change in sorted(edges, key=lambda e: (e[0], e[1])):
        current += change
        peak = max(peak, current)
    return peak


def _run_duration(run: RunRecord) -> float:
    if run.start_time is None or run.end_time is None:
        return 0.0
    return max(0.0, run.end_time - run.start_time)


def _decimal_percentile(values: Sequence[Decimal], q: float) -> Decimal:
    if not values:
        return Decimal(0)
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
