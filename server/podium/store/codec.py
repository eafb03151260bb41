"""Records <-> rows, shared by every backend: JSON text for structured columns,
integer nanos for money, integers for states (pure: no SQL, no driver)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from podium.core.failures import Failure
from podium.core.jsonvalues import compact_json, shared_compact_json
from podium.core.model import AttemptRecord, Event, ItemRecord, RunRecord, StepRecord, Usage
from podium.core.states import AttemptState, EventType, RunState, StepState

NANOS = Decimal(1_000_000_000)

_dumps = compact_json


def dumps(value: Any) -> str:
    return _dumps(value)


def dumps_optional(value: Any) -> str | None:
    return None if value is None else _dumps(value)


def loads_optional(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def to_nanos(amount: Decimal) -> int:
    # Round half-even to the nano: finer than any provider bills.
    return int((amount * NANOS).to_integral_value())


def from_nanos(nanos: int) -> Decimal:
    return Decimal(nanos) / NANOS


def _failure(failure: Failure | None) -> str | None:
    return None if failure is None else _dumps(failure.to_dict())


def _usage(usage: Usage) -> str | None:
    # Every counter counts: cached, cache-write and reasoning tokens too.
    return None if usage == Usage() else _dumps(usage.to_dict())


RUN_COLUMNS = (
    "run_id, workflow_id, workflow_version, state, input, output, failure, request_id,"
    " request_hash, labels, max_concurrency, create_time, start_time, end_time,"
    " last_sequence, usage, cost_nanos, priority, max_cost_nanos, trace_parent, trace_context,"
    " tenant, rerun_of, parent_run_id, parent_step_id, depth"
)


def run_row(run: RunRecord) -> tuple[Any, ...]:
    return (
        run.run_id,
        run.workflow_id,
        run.workflow_version,
        int(run.state),
        run.input_json if run.input_json is not None else _dumps(run.input),
        None if run.output is None else shared_compact_json(run.output),
        _failure(run.failure),
        run.request_id or None,
        run.request_hash,
        _dumps(run.labels),
        run.max_concurrency,
        run.create_time,
        run.start_time,
        run.end_time,
        run.last_sequence,
        _usage(run.usage),
        to_nanos(run.cost),
        run.priority,
        None if run.max_cost is None else to_nanos(run.max_cost),
        run.trace_parent or None,
        run.trace_context or None,
        run.tenant,
        run.rerun_of or None,
        run.parent_run_id,
        run.parent_step_id,
        run.depth,
    )


def run_from_row(row: Any) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        workflow_id=row[1],
        workflow_version=row[2],
        state=RunState(row[3]),
        input=json.loads(row[4]),
        input_json=row[4],
        output=loads_optional(row[5]),
        failure=Failure.from_dict(loads_optional(row[6])),
        request_id=row[7] or "",
        request_hash=row[8],
        labels=json.loads(row[9]),
        max_concurrency=row[10],
        create_time=row[11],
        start_time=row[12],
        end_time=row[13],
        last_sequence=row[14],
        usage=Usage.from_dict(loads_optional(row[15])),
        cost=from_nanos(row[16]),
        priority=row[17],
        max_cost=None if row[18] is None else from_nanos(row[18]),
        trace_parent=row[19] or "",
        trace_context=row[20] or "",
        tenant=row[21],
        rerun_of=row[22] or "",
        parent_run_id=row[23],
        parent_step_id=row[24],
        depth=row[25],
    )


STEP_COLUMNS = (
    "run_id, step_id, position, agent, state, input, output, failure, reason,"
    " start_time, end_time, usage, cost_nanos, due_time, items_total, items_succeeded,"
    " items_failed, iterations"
)


def step_row(run_id: str, step: StepRecord) -> tuple[Any, ...]:
    return (
        run_id,
        step.step_id,
        step.position,
        step.agent,
        int(step.state),
        None if step.input is None else shared_compact_json(step.input),
        None if step.output is None else shared_compact_json(step.output),
        _failure(step.failure),
        step.reason,
        step.start_time,
        step.end_time,
        _usage(step.usage),
        to_nanos(step.cost),
        step.due_time,
        step.items_total,
        step.items_succeeded,
        step.items_failed,
        step.iterations,
    )


def step_from_row(row: Any) -> StepRecord:
    return StepRecord(
        step_id=row[1],
        position=row[2],
        agent=row[3],
        state=StepState(row[4]),
        input=loads_optional(row[5]),
        output=loads_optional(row[6]),
        failure=Failure.from_dict(loads_optional(row[7])),
        reason=row[8],
        start_time=row[9],
        end_time=row[10],
        usage=Usage.from_dict(loads_optional(row[11])),
        cost=from_nanos(row[12]),
        due_time=row[13],
        items_total=row[14],
        items_succeeded=row[15],
        items_failed=row[16],
        iterations=row[17],
    )


ATTEMPT_COLUMNS = (
    "run_id, step_id, item, number, state, start_time, end_time, failure, usage, cost_nanos"
)


def attempt_row(run_id: str, step_id: str, attempt: AttemptRecord) -> tuple[Any, ...]:
    return (
        run_id,
        step_id,
        attempt.item,
        attempt.number,
        int(attempt.state),
        attempt.start_time,
        attempt.end_time,
        _failure(attempt.failure),
        _usage(attempt.usage),
        to_nanos(attempt.cost),
    )


def attempt_from_row(row: Any) -> AttemptRecord:
    return AttemptRecord(
        item=row[2],
        number=row[3],
        state=AttemptState(row[4]),
        start_time=row[5],
        end_time=row[6],
        failure=Failure.from_dict(loads_optional(row[7])),
        usage=Usage.from_dict(loads_optional(row[8])),
        cost=from_nanos(row[9]),
    )


ITEM_COLUMNS = "run_id, step_id, item, succeeded, output, failure"


def item_row(run_id: str, step_id: str, item: ItemRecord) -> tuple[Any, ...]:
    return (
        run_id,
        step_id,
        item.index,
        int(item.succeeded),
        dumps_optional(item.output),
        _failure(item.failure),
    )


def item_from_row(row: Any) -> ItemRecord:
    return ItemRecord(
        index=row[2],
        succeeded=bool(row[3]),
        output=loads_optional(row[4]),
        failure=Failure.from_dict(loads_optional(row[5])),
    )


def event_row(event: Event) -> tuple[Any, ...]:
    body: dict[str, Any] = {"w": event.workflow_id, "rs": int(event.run_state)}
    if event.step_id:
        body["s"] = event.step_id
    if event.step_state is not None:
        body["ss"] = int(event.step_state)
    if event.attempt:
        body["a"] = event.attempt
    if event.message:
        body["m"] = event.message
    if event.progress:
        body["p"] = event.progress
    if event.failure is not None:
        body["f"] = event.failure.to_dict()
    if event.usage is not None:
        body["u"] = event.usage.to_dict()
    if event.cost is not None:
        body["c"] = to_nanos(event.cost)
    if event.provider:
        body["pv"] = event.provider
    if event.model:
        body["md"] = event.model
    if event.item != -1:
        body["i"] = event.item
    if event.retry_delay is not None:
        body["rd"] = event.retry_delay
    if event.due_time is not None:
        body["dt"] = event.due_time
    if event.decision:
        body["dc"] = event.decision
    if event.breaker:
        body["br"] = event.breaker
    if event.actor:
        body["ac"] = event.actor
    if event.budget:
        body["bg"] = event.budget
    if event.price_version:
        body["pr"] = event.price_version
    if event.tool:
        body["tl"] = event.tool
    if event.callback_token:
        body["cb"] = event.callback_token
    text = _dumps(body)
    if event.output is not None:
        # The output's text as its step's or run's row has it (encoded once),
        # spliced in last: the body always holds "w" and "rs" before it.
        text = f'{text[:-1]},"o":{shared_compact_json(event.output)}}}'
    return (event.run_id, event.sequence, event.time, int(event.type), text)


def event_from_row(row: Any) -> Event:
    body = json.loads(row[4])
    step_state = body.get("ss")
    usage = body.get("u")
    cost = body.get("c")
    return Event(
        run_id=row[0],
        sequence=row[1],
        time=row[2],
        type=EventType(row[3]),
        workflow_id=body["w"],
        run_state=RunState(body["rs"]),
        step_id=body.get("s", ""),
        step_state=None if step_state is None else StepState(step_state),
        attempt=body.get("a", 0),
        message=body.get("m", ""),
        progress=body.get("p", 0.0),
        failure=Failure.from_dict(body.get("f")),
        output=body.get("o"),
        usage=None if usage is None else Usage.from_dict(usage),
        cost=None if cost is None else from_nanos(cost),
        provider=body.get("pv", ""),
        model=body.get("md", ""),
        item=body.get("i", -1),
        retry_delay=body.get("rd"),
        due_time=body.get("dt"),
        decision=body.get("dc", 0),
        breaker=body.get("br", ""),
        budget=body.get("bg", ""),
        price_version=body.get("pr", ""),
        tool=body.get("tl", ""),
        actor=body.get("ac", ""),
        callback_token=body.get("cb", ""),
    )
