"""Builders of the records the contract suite writes: minimal ones where a
test is about one field, and complete ones (every optional field set to a
value other than its default) where a test is about round trips."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from podium.core.failures import Failure
from podium.core.model import AttemptRecord, Event, ItemRecord, RunRecord, StepRecord, Usage
from podium.core.spec import (
    CacheSpec,
    ForEachSpec,
    RetrierSpec,
    StepSpec,
    WorkflowSpec,
)
from podium.core.states import AttemptState, EventType, RunState, StepState

# An arbitrary instant (2023-11-14T22:13:20Z); record times are offsets from it.
T0 = 1_700_000_000.0

# Output shaped like what agents return: nesting, every JSON type, non-ASCII text.
NESTED_OUTPUT: dict[str, Any] = {
    "total": 1234.5,
    "count": 3,
    "approved": False,
    "missing": None,
    "lines": [{"sku": "A-1", "qty": 2, "tags": ["x", "y"]}, {"sku": "B-2", "qty": 0}],
    "note": "Grüße, 世界 ✓",
}


def spec(description: str = "", *, max_cost: Decimal | None = None) -> WorkflowSpec:
    """A workflow spec with several steps and nested settings, so that a round
    trip through storage has something to lose."""
    return WorkflowSpec(
        description=description,
        steps=[
            StepSpec(id="plan", agent="echo", input={"topic": "input.topic"}),
            StepSpec(
                id="each",
                agent="llm",
                depends_on=["plan"],
                for_each=ForEachSpec(items="steps.plan.output.items", max_concurrency=4),
                retry=[RetrierSpec(error_equals=["podium.Timeout"], max_attempts=5)],
                cache=CacheSpec(ttl=3600.0),
                config={"provider": "simulated", "model": "sim-small", "temperature": 0.2},
            ),
        ],
        output={"result": "steps.each.output"},
        labels={"team": "billing"},
        max_cost=max_cost,
    )


def run_record(
    run_id: str,
    *,
    create_time: float = T0,
    workflow_id: str = "invoices",
    state: RunState = RunState.RUNNING,
    labels: dict[str, str] | None = None,
    request_id: str = "",
    end_time: float | None = None,
    cost: Decimal = Decimal(0),
    max_cost: Decimal | None = None,
) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        workflow_id=workflow_id,
        workflow_version=1,
        state=state,
        input={"topic": run_id},
        create_time=create_time,
        request_id=request_id,
        labels=dict(labels or {}),
        end_time=end_time,
        cost=cost,
        max_cost=max_cost,
    )


def complete_run_record(run_id: str) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        workflow_id="invoices",
        workflow_version=3,
        state=RunState.PARTIALLY_SUCCEEDED,
        input={"amount": 12.5, "customer": {"id": 7, "name": "Zoë"}, "lines": [1, 2, 3]},
        create_time=T0,
        request_id=f"request-of-{run_id}",
        request_hash="sha256:0f1e2d",
        labels={"team": "billing", "env": "prod"},
        max_concurrency=4,
        output=NESTED_OUTPUT,
        failure=Failure("podium.TooManyFailedItems", "2 of 3 items failed", retryable=False),
        start_time=T0 + 0.25,
        end_time=T0 + 9.125,
        last_sequence=17,
        usage=Usage(1200, 340, 100, 50, 20, 3),
        cost=Decimal("0.012345678"),
        priority=5,
        max_cost=Decimal("2.5"),
        trace_parent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        trace_context="00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01",
        rerun_of="original-of-" + run_id,
        parent_run_id="the-parent-run",
        parent_step_id="sub",
        depth=2,
    )


def step_record(step_id: str, position: int, *, state: StepState = StepState.PENDING) -> StepRecord:
    return StepRecord(step_id=step_id, agent="echo", position=position, state=state)


def complete_step_record(step_id: str, position: int) -> StepRecord:
    """Every field but `attempts`: the store keeps attempts as records of their own."""
    return StepRecord(
        step_id=step_id,
        agent="llm",
        position=position,
        state=StepState.WAITING,
        input={"prompt": "Summarise", "items": [1, 2]},
        output=NESTED_OUTPUT,
        failure=Failure("FlakyError", "boom", retryable=True),
        reason="quota:simulated-requests",
        start_time=T0 + 1.0,
        end_time=T0 + 2.5,
        usage=Usage(10, 20, 1, 2, 3, 1),
        cost=Decimal("0.000000007"),
        due_time=T0 + 60.0,
        items_total=10,
        items_succeeded=6,
        items_failed=1,
        iterations=2,
    )


def attempt_record(number: int, *, item: int = -1, start_time: float = T0) -> AttemptRecord:
    return AttemptRecord(
        number=number, state=AttemptState.RUNNING, start_time=start_time, item=item
    )


def complete_attempt_record(number: int, *, item: int = -1) -> AttemptRecord:
    return AttemptRecord(
        number=number,
        state=AttemptState.FAILED,
        start_time=T0 + number,
        item=item,
        end_time=T0 + number + 0.5,
        failure=Failure("provider.server_error", "502 from upstream", retryable=True),
        usage=Usage(5, 6, 0, 0, 0, 1),
        cost=Decimal("0.000001234"),
    )


def item_record(index: int, *, succeeded: bool = True) -> ItemRecord:
    if succeeded:
        return ItemRecord(index=index, succeeded=True, output={"index": index, "data": [index]})
    return ItemRecord(index=index, succeeded=False, failure=Failure("ItemError", f"item {index}"))


def event(run_id: str, sequence: int, *, event_type: EventType = EventType.STEP_PROGRESS) -> Event:
    return Event(
        run_id=run_id,
        sequence=sequence,
        time=T0 + sequence,
        type=event_type,
        workflow_id="invoices",
        run_state=RunState.RUNNING,
    )


def complete_event(run_id: str, sequence: int) -> Event:
    """Every optional field of Event set to a value other than its default."""
    return Event(
        run_id=run_id,
        sequence=sequence,
        time=T0 + 0.1,
        type=EventType.LLM_CALL,
        workflow_id="invoices",
        run_state=RunState.WAITING_APPROVAL,
        step_id="ask",
        step_state=StepState.RUNNING,
        attempt=2,
        message="called the model",
        progress=0.75,
        failure=Failure("provider.rate_limited", "429", retryable=True),
        output=NESTED_OUTPUT,
        usage=Usage(100, 200, 30, 40, 50, 1),
        cost=Decimal("0.000123457"),
        provider="openai",
        model="gpt-4o-mini",
        item=4,
        retry_delay=1.5,
        due_time=T0 + 30.0,
        decision=2,
        breaker="model:openai/gpt-4o-mini",
        budget="server-daily",
        price_version="2025-06-01",
        tool="calculator",
    )
