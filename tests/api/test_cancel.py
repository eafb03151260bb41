"""Cancellation and compensation: CancelRun on a running step, a pending step
and a retry wait; idempotence; cancelling an ended run; compensations in
reverse completion order, a failing compensation, compensations on cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import pytest

from podium.core.clock import ManualClock
from podium.testing import (
    FOREVER_MS,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    error_info,
    eventually,
    field_violations,
    get_run,
    of_type,
    plain,
    run_to_end,
    sequences,
    serving,
    start_run,
    step_of,
    step_reaches,
)
from podium.v1 import event_pb2, execution_service_pb2, run_pb2

E = event_pb2
R = run_pb2

COMPENSATION_EVENTS = frozenset(
    {
        E.RUN_EVENT_TYPE_COMPENSATION_STARTED,
        E.RUN_EVENT_TYPE_COMPENSATION_SUCCEEDED,
        E.RUN_EVENT_TYPE_COMPENSATION_FAILED,
    }
)
UNDO = {"agent": "echo", "input": {"undo": "output"}}


async def cancel(stubs: Stubs, run: str, reason: str = "") -> run_pb2.Run:
    response = await stubs.executions.CancelRun(
        execution_service_pb2.CancelRunRequest(name=run, reason=reason)
    )
    return response.run


def compensations(events: Sequence[event_pb2.RunEvent]) -> list[tuple[str, str]]:
    return [
        (E.RunEventType.Name(e.type).removeprefix("RUN_EVENT_TYPE_COMPENSATION_"), e.step_id)
        for e in events
        if e.type in COMPENSATION_EVENTS
    ]


def failing(step_id: str, *depends_on: str) -> dict[str, Any]:
    return {"id": step_id, "agent": "flaky", "dependsOn": list(depends_on)}


# -- CancelRun ------------------------------------------------------------------------------


async def test_cancel_a_running_step_and_its_pending_dependents(stubs: Stubs) -> None:
    spec = {
        "steps": [
            echo_step("first"),
            echo_step("long", "first", delay_ms=FOREVER_MS),
            echo_step("next", "long"),
        ]
    }
    await create_workflow(stubs, "cancel-me", spec)
    run = await start_run(stubs, "cancel-me")
    await step_reaches(stubs, run.name, "long", R.STEP_STATE_RUNNING)

    cancelled = await cancel(stubs, run.name, "operator said stop")
    assert cancelled.state == R.RUN_STATE_CANCELLED
    events = await collect_events(stubs, run.name)
    run = await get_run(stubs, run.name)
    assert run.state == R.RUN_STATE_CANCELLED
    assert run.failure.type == "podium.Cancelled"
    assert "operator said stop" in run.failure.message
    assert step_of(run, "first").state == R.STEP_STATE_SUCCEEDED
    long = step_of(run, "long")
    assert long.state == R.STEP_STATE_CANCELLED
    assert [a.state for a in long.attempts] == [R.ATTEMPT_STATE_CANCELLED]
    assert long.attempts[0].HasField("end_time")
    nxt = step_of(run, "next")
    assert nxt.state == R.STEP_STATE_CANCELLED
    assert "operator said stop" in nxt.reason
    assert not nxt.attempts

    assert events[-1].type == E.RUN_EVENT_TYPE_RUN_CANCELLED
    assert {e.step_id for e in of_type(events, E.RUN_EVENT_TYPE_STEP_CANCELLED)} == {
        "long",
        "next",
    }
    assert sequences(events) == list(range(1, len(events) + 1))

    # A second cancel is a no-op: same state, no new event.
    again = await cancel(stubs, run.name, "again")
    assert again.state == R.RUN_STATE_CANCELLED
    assert again.last_sequence == run.last_sequence
    assert (await get_run(stubs, run.name)).failure.message == run.failure.message


async def test_cancelling_an_ended_run_is_failed_precondition(stubs: Stubs) -> None:
    await create_workflow(stubs, "ended", {"steps": [echo_step("a")]})
    run, _ = await run_to_end(stubs, "ended")
    assert run.state == R.RUN_STATE_SUCCEEDED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cancel(stubs, run.name)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(caught.value).reason == "RUN_ALREADY_ENDED"
    assert (await get_run(stubs, run.name)).state == R.RUN_STATE_SUCCEEDED


@pytest.fixture
async def manual(db_path: str) -> AsyncIterator[tuple[ManualClock, Stubs]]:
    clock = ManualClock()
    async with serving(db_path, clock=clock) as (_, stubs):
        yield clock, stubs


async def test_cancel_during_a_retry_wait_ends_the_step(
    manual: tuple[ManualClock, Stubs],
) -> None:
    clock, stubs = manual
    step = {**failing("f"), "retry": [{"errorEquals": ["FlakyError"], "interval": "30s"}]}
    await create_workflow(stubs, "cancel-waiting", {"steps": [step]})
    run = await start_run(stubs, "cancel-waiting")
    await step_reaches(stubs, run.name, "f", R.STEP_STATE_WAITING, attempts=1)
    assert (await cancel(stubs, run.name)).state == R.RUN_STATE_CANCELLED
    clock.advance(60)  # the retry would be due now: it must not run
    events = await collect_events(stubs, run.name)
    f = step_of(await get_run(stubs, run.name), "f")
    assert f.state == R.STEP_STATE_CANCELLED
    assert [a.state for a in f.attempts] == [R.ATTEMPT_STATE_FAILED]
    assert not f.HasField("due_time")
    assert len(of_type(events, E.RUN_EVENT_TYPE_STEP_STARTED)) == 1
    assert events[-1].type == E.RUN_EVENT_TYPE_RUN_CANCELLED


# -- compensation ---------------------------------------------------------------------------

SAGA = {
    "steps": [
        echo_step("a", input={"booked": "'flight'"}, compensate=UNDO),
        echo_step("b", "a", input={"booked": "'hotel'"}, compensate=UNDO),
        failing("c", "b"),
    ]
}


async def test_compensations_run_in_reverse_completion_order(stubs: Stubs) -> None:
    await create_workflow(stubs, "saga", SAGA)
    run, events = await run_to_end(stubs, "saga")
    assert run.state == R.RUN_STATE_FAILED
    assert run.failure.type == "FlakyError"
    assert compensations(events) == [
        ("STARTED", "b"),
        ("SUCCEEDED", "b"),
        ("STARTED", "a"),
        ("SUCCEEDED", "a"),
    ]
    outputs = [plain(e.output) for e in of_type(events, E.RUN_EVENT_TYPE_COMPENSATION_SUCCEEDED)]
    assert outputs == [{"undo": {"booked": "hotel"}}, {"undo": {"booked": "flight"}}]
    # Compensations come after the failure and before the run's final event.
    first = next(i for i, e in enumerate(events) if e.type in COMPENSATION_EVENTS)
    assert first > next(i for i, e in enumerate(events) if e.type == E.RUN_EVENT_TYPE_STEP_FAILED)
    assert events[-1].type == E.RUN_EVENT_TYPE_RUN_FAILED
    assert sequences(events) == list(range(1, len(events) + 1))
    # Compensating leaves the steps' own outcome alone.
    assert step_of(run, "a").state == R.STEP_STATE_SUCCEEDED
    assert step_of(run, "b").state == R.STEP_STATE_SUCCEEDED


async def test_compensation_order_does_not_depend_on_distinct_timestamps(
    manual: tuple[ManualClock, Stubs],
) -> None:
    # On a clock that does not move, a and b end at the same instant; b still
    # completed after a and must be undone first.
    _, stubs = manual
    await create_workflow(stubs, "saga", SAGA)
    run, events = await run_to_end(stubs, "saga")
    assert run.state == R.RUN_STATE_FAILED
    assert compensations(events) == [
        ("STARTED", "b"),
        ("SUCCEEDED", "b"),
        ("STARTED", "a"),
        ("SUCCEEDED", "a"),
    ]


async def test_a_failing_compensation_does_not_stop_the_others(stubs: Stubs) -> None:
    broken_undo = {"agent": "flaky", "config": {"fail_attempts": 5, "error": "UndoFailed"}}
    spec = {
        "steps": [
            echo_step("a", compensate=UNDO),
            echo_step("b", "a", compensate=broken_undo),
            failing("c", "b"),
        ]
    }
    await create_workflow(stubs, "saga-broken", spec)
    run, events = await run_to_end(stubs, "saga-broken")
    assert run.state == R.RUN_STATE_FAILED
    assert run.failure.type == "FlakyError"  # the step's failure, not the undo's
    assert compensations(events) == [
        ("STARTED", "b"),
        ("FAILED", "b"),
        ("STARTED", "a"),
        ("SUCCEEDED", "a"),
    ]
    (failed,) = of_type(events, E.RUN_EVENT_TYPE_COMPENSATION_FAILED)
    assert failed.failure.type == "UndoFailed"
    assert events[-1].type == E.RUN_EVENT_TYPE_RUN_FAILED


async def test_cancellation_runs_the_compensations_of_succeeded_steps(stubs: Stubs) -> None:
    spec = {
        "steps": [
            echo_step("a", compensate=UNDO),
            echo_step("long", "a", delay_ms=FOREVER_MS, compensate=UNDO),
            echo_step("side", compensate=UNDO, delay_ms=FOREVER_MS),
        ]
    }
    await create_workflow(stubs, "saga-cancel", spec)
    run = await start_run(stubs, "saga-cancel")
    await step_reaches(stubs, run.name, "long", R.STEP_STATE_RUNNING)
    assert (await cancel(stubs, run.name)).state == R.RUN_STATE_CANCELLED
    events = await collect_events(stubs, run.name)
    # Only the succeeded step is undone; cancelled ones never did anything.
    assert compensations(events) == [("STARTED", "a"), ("SUCCEEDED", "a")]
    assert events[-1].type == E.RUN_EVENT_TYPE_RUN_CANCELLED


async def test_a_successful_or_partially_successful_run_is_not_compensated(
    stubs: Stubs,
) -> None:
    spec = {
        "steps": [
            echo_step("a", compensate=UNDO),
            {**failing("soft"), "onFailure": "FAILURE_POLICY_CONTINUE"},
        ]
    }
    await create_workflow(stubs, "no-saga", spec)
    run, events = await run_to_end(stubs, "no-saga")
    assert run.state == R.RUN_STATE_PARTIALLY_SUCCEEDED
    assert compensations(events) == []


async def test_a_compensation_config_is_validated_like_a_step_config(stubs: Stubs) -> None:
    undo = {"agent": "echo", "config": {"delay_msec": 5}}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create_workflow(stubs, "bad-undo", {"steps": [echo_step("a", compensate=undo)]})
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = [field for field, _ in field_violations(caught.value)]
    assert any(f.startswith("spec.steps[0].compensate.config") for f in fields), fields


async def test_the_step_config_is_validated(stubs: Stubs) -> None:
    """The counterpart of the test above, showing what validation does for steps."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create_workflow(
            stubs, "bad-step", {"steps": [{"id": "a", "agent": "echo", "config": {"x": 1}}]}
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(caught.value)] == ["spec.steps[0].config.x"]


async def test_cancel_waits_for_a_settled_state(stubs: Stubs) -> None:
    """The CancelRun reply already shows every step ended."""
    spec = {"steps": [echo_step(f"p{i}", delay_ms=FOREVER_MS) for i in range(4)]}
    await create_workflow(stubs, "cancel-many", spec)
    run = await start_run(stubs, "cancel-many")

    async def all_running() -> bool:
        current = await get_run(stubs, run.name)
        return all(s.state == R.STEP_STATE_RUNNING for s in current.steps)

    await eventually(all_running)
    reply = await cancel(stubs, run.name)
    assert reply.state == R.RUN_STATE_CANCELLED
    assert {s.state for s in reply.steps} == {R.STEP_STATE_CANCELLED}
    assert {a.state for s in reply.steps for a in s.attempts} == {R.ATTEMPT_STATE_CANCELLED}
