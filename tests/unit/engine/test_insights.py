"""Insights on constructed histories: exactly the recommendations the data
implies, with the figures it implies, and none on healthy data or on too
little history."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from podium.core.failures import Failure
from podium.core.model import AttemptRecord, Event, RunRecord, StepRecord, Usage
from podium.core.spec import WorkflowSpec
from podium.core.states import AttemptState, EventType, RunState, StepState
from podium.engine.insights import ModelPrice, RunHistory, compute, longest_path, percentile
from podium.engine.validation import Plan, compile_plan
from podium.plugins.manager import load_plugins

T0 = 1_000_000.0
PENNY = Decimal("0.01")
PRICES = [
    ModelPrice("simulated", "sim-large", Decimal(3), Decimal(15)),
    ModelPrice("simulated", "sim-small", Decimal("0.5"), Decimal("1.5")),
]


def plan_of(steps: list[dict[str, Any]]) -> Plan:
    registry = load_plugins(include_entry_points=False).registry
    return compile_plan(WorkflowSpec.model_validate({"steps": steps}), registry, registry.agent)


# a -> {b, c, e}; {b, c} -> d. e reads nothing of a.
PLAN = plan_of(
    [
        {"id": "a", "agent": "echo", "input": {"n": "input.n"}},
        {"id": "b", "agent": "echo", "depends_on": ["a"], "input": {"n": "steps.a.output.n"}},
        {"id": "c", "agent": "echo", "depends_on": ["a"], "input": {"k": "steps.a.output.n"}},
        {"id": "e", "agent": "echo", "depends_on": ["a"], "input": {"n": "input.n"}},
        {
            "id": "d",
            "agent": "echo",
            "depends_on": ["b", "c"],
            "input": {"b": "steps.b.output", "c": "steps.c.output"},
        },
    ]
)


# The same shape where every dependency is read.
HEALTHY_PLAN = plan_of(
    [
        {"id": "a", "agent": "echo", "input": {"n": "input.n"}},
        {"id": "b", "agent": "echo", "depends_on": ["a"], "input": {"n": "steps.a.output.n"}},
        {"id": "c", "agent": "echo", "depends_on": ["a"], "input": {"k": "steps.a.output.n"}},
        {"id": "e", "agent": "echo", "depends_on": ["a"], "input": {"n": "steps.a.output.n"}},
        {
            "id": "d",
            "agent": "echo",
            "depends_on": ["b", "c"],
            "input": {"b": "steps.b.output", "c": "steps.c.output"},
        },
    ]
)


def step(
    step_id: str,
    start: float,
    end: float,
    *,
    input: Any,
    attempts: list[tuple[float, float, bool]] | None = None,
    cost: Decimal = Decimal(0),
) -> StepRecord:
    """A succeeded step; `attempts`: (start, end, succeeded), default one over the step."""
    records = []
    for number, (a_start, a_end, ok) in enumerate(attempts or [(start, end, True)], start=1):
        records.append(
            AttemptRecord(
                number,
                AttemptState.SUCCEEDED if ok else AttemptState.FAILED,
                T0 + a_start,
                end_time=T0 + a_end,
                failure=None if ok else Failure("FlakyError", "flaky"),
            )
        )
    return StepRecord(
        step_id=step_id,
        agent="echo",
        position=0,
        state=StepState.SUCCEEDED,
        input=input,
        attempts=records,
        start_time=T0 + start,
        end_time=T0 + end,
        cost=cost,
    )


def run(index: int, steps: list[StepRecord], events: list[Event] | None = None) -> RunHistory:
    record = RunRecord(
        run_id=f"r{index}",
        workflow_id="w",
        workflow_version=1,
        state=RunState.SUCCEEDED,
        input={"n": index},
        create_time=T0,
        start_time=T0,
        end_time=T0 + max((s.end_time or T0) - T0 for s in steps),
        cost=sum((s.cost for s in steps), Decimal(0)),
    )
    return RunHistory(record, steps, events or [])


def healthy(index: int) -> RunHistory:
    return run(
        index,
        [
            step("a", 0, 1, input={"n": index}, cost=PENNY),
            step("b", 1, 2, input={"n": index}, cost=PENNY),
            step("c", 1, 2, input={"k": index}, cost=PENNY),
            step("e", 1, 2, input={"n": index}, cost=PENNY),
            step("d", 2, 3, input={"b": index, "c": index}, cost=PENNY),
        ],
    )


def troubled(index: int) -> RunHistory:
    retried = index % 2 == 0
    c_attempts: list[tuple[float, float, bool]] = (
        [(1, 1.2, False), (1.5, 2, True)] if retried else [(1.0, 2.0, True)]
    )
    llm_call = Event(
        run_id=f"r{index}",
        sequence=5,
        time=T0 + 8,
        type=EventType.LLM_CALL,
        workflow_id="w",
        run_state=RunState.RUNNING,
        step_id="b",
        usage=Usage(input_tokens=1000, output_tokens=500, calls=1),
        cost=Decimal("0.009"),
        provider="simulated",
        model="sim-large",
    )
    return run(
        index,
        [
            step("a", 0, 1, input={"n": index}),
            step("b", 1, 9, input={"n": index}, cost=Decimal("0.009")),
            step("c", 1, 2, input={"k": 1}, attempts=c_attempts, cost=Decimal("0.001")),
            step("e", 1, 2, input={"n": index}),
            # Waits half a second for a slot before its attempt starts.
            step("d", 9, 10.5, input={"b": index, "c": 1}, attempts=[(9.5, 10.5, True)]),
        ],
        [llm_call],
    )


def test_healthy_history_gives_statistics_and_no_recommendation() -> None:
    insights = compute("w", HEALTHY_PLAN, [healthy(i) for i in range(6)], prices=PRICES)
    assert insights.enough_history and insights.runs == 6
    assert insights.recommendations == []
    assert insights.critical_path in (["a", "b", "d"], ["a", "c", "d"])
    assert insights.critical_path_duration == 3
    assert {s.step_id: s.p50_duration for s in insights.steps} == {
        "a": 1,
        "b": 1,
        "c": 1,
        "e": 1,
        "d": 1,
    }
    assert all(s.retry_rate == 0 and s.p95_queue_wait == 0 for s in insights.steps)
    assert insights.p50_run_duration == 3
    assert all(s.cost_share == pytest.approx(0.2) for s in insights.steps)


def test_troubled_history_gives_exactly_the_recommendations_it_implies() -> None:
    insights = compute("w", PLAN, [troubled(i) for i in range(6)], prices=PRICES)
    found = {(r.kind, r.step_id): r for r in insights.recommendations}
    assert sorted(found) == [
        ("bottleneck", "b"),
        ("cache", "c"),
        ("concurrency", "d"),
        ("cost", "b"),
        ("dependency", "e"),
        ("flaky", "c"),
    ]
    assert insights.critical_path == ["a", "b", "d"]
    assert insights.critical_path_duration == pytest.approx(10.5)
    # Without b's 8 s, the longest path is a -> c -> d (3.5 s).
    assert found[("bottleneck", "b")].saving_seconds == pytest.approx(7.0)
    flaky = found[("flaky", "c")]
    assert "FlakyError x3" in flaky.evidence
    # Three runs lost 0.5 s each to the failed attempt and its backoff: 0.25 s a run.
    assert flaky.saving_seconds == pytest.approx(0.25)
    assert "max_attempts: 3" in flaky.suggestion
    # sim-small on b's own tokens (6000 in, 3000 out): $0.063 -> $0.0075 over 6 runs.
    cost = found[("cost", "b")]
    assert cost.saving_cost == (Decimal("0.063") - Decimal("0.0075")) / 6
    assert "sim-small" in cost.suggestion
    assert found[("dependency", "e")].saving_seconds == pytest.approx(1.0)
    assert "steps.a" in found[("dependency", "e")].evidence
    concurrency = found[("concurrency", "d")]
    assert concurrency.saving_seconds == pytest.approx(0.5)
    assert "max_concurrency: 3" in concurrency.suggestion
    cache = found[("cache", "c")]
    assert "5 of 6" in cache.evidence
    assert cache.saving_seconds == pytest.approx(5 / 6)
    steps = {s.step_id: s for s in insights.steps}
    assert steps["c"].retry_rate == 0.5 and steps["c"].failure_types == {"FlakyError": 3}
    assert steps["b"].cost_share == pytest.approx(0.9)
    assert steps["d"].p95_queue_wait == pytest.approx(0.5)


def test_too_little_history_says_so_and_recommends_nothing() -> None:
    insights = compute("w", PLAN, [troubled(i) for i in range(3)], prices=PRICES)
    assert not insights.enough_history
    assert insights.recommendations == []
    assert "only 3 finished runs" in insights.note
    assert insights.runs == 3 and insights.steps[1].p50_duration == 8


def test_a_dependency_whose_output_is_needed_through_it_is_not_needless() -> None:
    # c reads a, which is its ancestor only through b: b is needed even though c
    # reads nothing of b.
    chain = plan_of(
        [
            {"id": "a", "agent": "echo"},
            {"id": "b", "agent": "echo", "depends_on": ["a"]},
            {"id": "c", "agent": "echo", "depends_on": ["b"], "input": {"x": "steps.a.output"}},
        ]
    )
    histories = [
        run(
            i,
            [
                step("a", 0, 1, input={"i": i}),
                step("b", 1, 2, input={"i": i}),
                step("c", 2, 3, input={"i": i}),
            ],
        )
        for i in range(5)
    ]
    kinds = {(r.kind, r.step_id) for r in compute("w", chain, histories).recommendations}
    # b reads nothing of a and a delays it: needless. c's dependency on b is not.
    assert kinds == {("dependency", "b")}


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 0.5) == 0
    assert percentile([3, 1, 2], 0.5) == 2
    assert percentile(list(range(1, 101)), 0.95) == 95
    assert longest_path(PLAN, {"a": 1, "b": 5, "c": 1, "e": 9, "d": 1}) == (["a", "e"], 10)


def test_quota_waits_are_measured_from_the_wait_to_the_resumption() -> None:
    def wait_event(sequence: int, at: float, kind: EventType, message: str) -> Event:
        return Event(
            run_id="r0",
            sequence=sequence,
            time=T0 + at,
            type=kind,
            workflow_id="w",
            run_state=RunState.RUNNING,
            step_id="b",
            message=message,
        )

    events = [
        wait_event(1, 1.5, EventType.STEP_WAITING, "quota:requests"),
        wait_event(2, 4.5, EventType.STEP_PROGRESS, "resumed after quota:requests"),
        # A breaker wait is not a quota wait.
        wait_event(3, 5.0, EventType.STEP_WAITING, "breaker:model:simulated/sim-large"),
        wait_event(
            4, 6.0, EventType.STEP_PROGRESS, "resumed after breaker:model:simulated/sim-large"
        ),
    ]
    history = healthy(0)
    waited = RunHistory(history.run, history.steps, events)
    insights = compute("w", HEALTHY_PLAN, [waited], prices=PRICES)
    steps = {s.step_id: s for s in insights.steps}
    assert steps["b"].p50_quota_wait == pytest.approx(3.0)
    assert steps["a"].p50_quota_wait == 0
