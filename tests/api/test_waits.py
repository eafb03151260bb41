"""Durable timers and human approvals through a real server, on a ManualClock:
nothing here sleeps for real beyond short polls for the server to get there.
ResolveApproval's invalid requests are refused field by field."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import grpc
import pytest

from podium.core.clock import ManualClock
from podium.core.states import RunState
from podium.store.sqlite.store import SqliteStore
from podium.testing import (
    FINAL_EVENT_TYPES,
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
    resolve_approval,
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
X = execution_service_pb2

T0 = 1_700_000_000.0  # ManualClock's default start: 2023-11-14T22:13:20Z


def iso(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.isoformat().replace("+00:00", "Z")


async def armed(clock: ManualClock, count: int = 1) -> None:
    """Waits (a short real-time ceiling) until `count` timers sleep on the clock."""

    async def ready() -> bool:
        return clock.sleepers >= count

    await eventually(ready)


async def settle() -> None:
    """Gives the server's event loop a moment after a clock advance, before
    checking that nothing happened (never that something did: that is
    waited for)."""
    await asyncio.sleep(0.05)


async def events_until(
    stubs: Stubs, run: str, type_: event_pb2.RunEventType.ValueType, count: int = 1
) -> list[event_pb2.RunEvent]:
    """The run's events up to the `count`-th event of `type_`."""
    events: list[event_pb2.RunEvent] = []
    while len(of_type(events, type_)) < count:
        after = events[-1].sequence if events else 0
        events += await collect_events(stubs, run, after, limit=1)
        assert events[-1].type not in FINAL_EVENT_TYPES, events[-1]
    return events


async def state_of(stubs: Stubs, run: str, step_id: str) -> tuple[int, int]:
    view = await get_run(stubs, run)
    return view.state, step_of(view, step_id).state


def timer_then_echo(wait: dict[str, Any]) -> dict[str, Any]:
    return {
        "steps": [
            {"id": "pause", "wait": wait},
            echo_step("after", "pause", input={"at": "steps.pause.output.waited_until"}),
        ]
    }


# -- timers --------------------------------------------------------------------------------


async def test_a_duration_wait_ends_exactly_at_its_due_time(db_path: str) -> None:
    clock = ManualClock()
    async with serving(db_path, clock=clock) as (_, stubs):
        await create_workflow(stubs, "timer", timer_then_echo({"duration": "3600s"}))
        run = await start_run(stubs, "timer")
        before = await events_until(stubs, run.name, E.RUN_EVENT_TYPE_STEP_WAITING)
        waiting = before[-1]
        assert waiting.step_id == "pause"
        assert waiting.step_state == R.STEP_STATE_WAITING
        assert waiting.due_time.ToSeconds() == T0 + 3600
        assert iso(T0 + 3600) in waiting.message
        view = await get_run(stubs, run.name)
        pause = step_of(view, "pause")
        assert pause.state == R.STEP_STATE_WAITING
        assert pause.due_time.ToSeconds() == T0 + 3600
        assert view.state == R.RUN_STATE_RUNNING

        await armed(clock)
        clock.advance(3599)
        await settle()
        assert await state_of(stubs, run.name, "pause") == (
            R.RUN_STATE_RUNNING,
            R.STEP_STATE_WAITING,
        )
        clock.advance(2)
        rest = await collect_events(stubs, run.name, before[-1].sequence)
        final = await get_run(stubs, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    assert plain(step_of(final, "pause").output) == {"waited_until": iso(T0 + 3600)}
    assert plain(step_of(final, "after").output) == {"at": iso(T0 + 3600)}
    assert not step_of(final, "pause").attempts  # a timer runs no agent
    assert sequences(before + rest) == list(range(1, len(before) + len(rest) + 1))
    assert rest[-1].type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED


async def test_a_wait_keeps_its_due_time_across_a_restart(db_path: str) -> None:
    first_clock = ManualClock(T0)
    async with serving(db_path, clock=first_clock) as (server, stubs):
        await create_workflow(stubs, "durable", timer_then_echo({"duration": "3600s"}))
        run = await start_run(stubs, "durable")
        before = await events_until(stubs, run.name, E.RUN_EVENT_TYPE_STEP_WAITING)
        await armed(first_clock)
        first_clock.advance(1000)  # 2600 s left
        await settle()
        await server.stop(0.5)

    second_clock = ManualClock(T0 + 1000)  # the same "now" as when it stopped
    async with serving(db_path, clock=second_clock) as (_, stubs):
        await armed(second_clock)
        view = await get_run(stubs, run.name)
        assert step_of(view, "pause").state == R.STEP_STATE_WAITING
        assert step_of(view, "pause").due_time.ToSeconds() == T0 + 3600
        second_clock.advance(2599)
        await settle()
        assert await state_of(stubs, run.name, "pause") == (
            R.RUN_STATE_RUNNING,
            R.STEP_STATE_WAITING,
        )
        second_clock.advance(2)
        rest = await collect_events(stubs, run.name, before[-1].sequence)
        final = await get_run(stubs, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    assert plain(step_of(final, "pause").output) == {"waited_until": iso(T0 + 3600)}
    # The wait was not started again: one STEP_WAITING in the whole history.
    events = before + rest
    assert len(of_type(events, E.RUN_EVENT_TYPE_STEP_WAITING)) == 1
    assert sequences(events) == list(range(1, len(events) + 1))


async def test_a_wait_whose_due_time_passed_while_down_ends_at_once(db_path: str) -> None:
    first_clock = ManualClock(T0)
    async with serving(db_path, clock=first_clock) as (server, stubs):
        await create_workflow(stubs, "overdue", timer_then_echo({"duration": "60s"}))
        run = await start_run(stubs, "overdue")
        await events_until(stubs, run.name, E.RUN_EVENT_TYPE_STEP_WAITING)
        await server.stop(0.5)
    async with serving(db_path, clock=ManualClock(T0 + 7200)) as (_, stubs):
        events = await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    assert plain(step_of(final, "pause").output) == {"waited_until": iso(T0 + 60)}
    assert events[-1].type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED


@pytest.mark.parametrize(
    ("wait", "input", "due"),
    [
        ({"time": iso(T0 + 100)}, {}, T0 + 100),
        ({"timeExpression": "input.until"}, {"until": iso(T0 + 3600)}, T0 + 3600),
        (
            {"timeExpression": "timestamp(input.from) + duration('90s')"},
            {"from": iso(T0 + 10)},
            T0 + 100,
        ),
    ],
    ids=["time", "time_expression", "cel_timestamp"],
)
async def test_a_wait_until_an_instant(
    db_path: str, wait: dict[str, Any], input: dict[str, Any], due: float
) -> None:
    clock = ManualClock(T0)
    async with serving(db_path, clock=clock) as (_, stubs):
        await create_workflow(stubs, "until", timer_then_echo(wait))
        run = await start_run(stubs, "until", input)
        before = await events_until(stubs, run.name, E.RUN_EVENT_TYPE_STEP_WAITING)
        assert before[-1].due_time.ToSeconds() == due
        await armed(clock)
        clock.advance(due - T0 - 1)
        await settle()
        assert (await state_of(stubs, run.name, "pause"))[1] == R.STEP_STATE_WAITING
        clock.advance(1)
        await collect_events(stubs, run.name, before[-1].sequence)
        final = await get_run(stubs, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    assert plain(step_of(final, "pause").output) == {"waited_until": iso(due)}


async def test_an_instant_in_the_past_does_not_wait(db_path: str) -> None:
    async with serving(db_path, clock=ManualClock(T0)) as (_, stubs):
        await create_workflow(stubs, "past", timer_then_echo({"time": iso(T0 - 3600)}))
        run, _ = await run_to_end(stubs, "past")
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure


async def test_a_time_expression_that_is_no_instant_fails_the_step(db_path: str) -> None:
    async with serving(db_path, clock=ManualClock(T0)) as (_, stubs):
        await create_workflow(stubs, "not-time", timer_then_echo({"timeExpression": "input.x"}))
        run, _ = await run_to_end(stubs, "not-time", {"x": "tomorrow"})
    assert run.state == R.RUN_STATE_FAILED
    pause = step_of(run, "pause")
    assert pause.failure.type == "podium.InvalidInput"
    assert "tomorrow" in pause.failure.message


# -- approvals -----------------------------------------------------------------------------


def approval_then_echo(**approval: Any) -> dict[str, Any]:
    gate: dict[str, Any] = {
        "id": "gate",
        "approval": {"prompt": "Approve {{ input.amount }}?", **approval},
    }
    return {
        "steps": [
            gate,
            echo_step("after", "gate", input={"approved": "steps.gate.output.approved"}),
        ]
    }


APPROVE = event_pb2.APPROVAL_DECISION_APPROVE
REJECT = event_pb2.APPROVAL_DECISION_REJECT


async def test_an_approved_step_succeeds_and_the_run_goes_on(stubs: Stubs) -> None:
    await create_workflow(stubs, "approve", approval_then_echo())
    run = await start_run(stubs, "approve", {"amount": 42})
    before = await events_until(stubs, run.name, E.RUN_EVENT_TYPE_APPROVAL_REQUESTED)
    requested = before[-1]
    assert requested.step_id == "gate"
    assert requested.message == "Approve 42?"
    assert requested.run_state == R.RUN_STATE_WAITING_APPROVAL
    assert requested.step_state == R.STEP_STATE_WAITING
    assert not requested.HasField("due_time")  # no timeout
    view = await get_run(stubs, run.name)
    assert view.state == R.RUN_STATE_WAITING_APPROVAL
    assert step_of(view, "gate").state == R.STEP_STATE_WAITING
    assert step_of(view, "after").state == R.STEP_STATE_PENDING

    await resolve_approval(stubs, run.name, "gate", APPROVE, "fine by me")
    rest = await collect_events(stubs, run.name, requested.sequence)
    final = await get_run(stubs, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    resolved = of_type(rest, E.RUN_EVENT_TYPE_APPROVAL_RESOLVED)
    assert len(resolved) == 1
    assert (resolved[0].step_id, resolved[0].decision, resolved[0].message) == (
        "gate",
        APPROVE,
        "fine by me",
    )
    assert plain(step_of(final, "gate").output) == {"approved": True, "comment": "fine by me"}
    assert step_of(final, "gate").state == R.STEP_STATE_SUCCEEDED
    assert plain(step_of(final, "after").output) == {"approved": True}
    events = before + rest
    assert sequences(events) == list(range(1, len(events) + 1))
    # After the decision the run is no longer waiting for approval.
    after_started = rest[[e.step_id for e in rest].index("after")]
    assert after_started.run_state == R.RUN_STATE_RUNNING


@pytest.mark.parametrize(
    ("on_failure", "run_state"),
    [
        ("FAILURE_POLICY_FAIL", R.RUN_STATE_FAILED),
        ("FAILURE_POLICY_CONTINUE", R.RUN_STATE_PARTIALLY_SUCCEEDED),
    ],
)
async def test_a_rejected_step_fails_with_the_comment(
    stubs: Stubs, on_failure: str, run_state: int
) -> None:
    spec = approval_then_echo()
    spec["steps"][0]["onFailure"] = on_failure
    await create_workflow(stubs, "reject", spec)
    run = await start_run(stubs, "reject", {"amount": 1_000_000})
    before = await events_until(stubs, run.name, E.RUN_EVENT_TYPE_APPROVAL_REQUESTED)
    assert before[-1].message == "Approve 1000000?"
    await resolve_approval(stubs, run.name, "gate", REJECT, "way too much")
    rest = await collect_events(stubs, run.name, before[-1].sequence)
    final = await get_run(stubs, run.name)
    assert final.state == run_state
    gate = step_of(final, "gate")
    assert gate.state == R.STEP_STATE_FAILED
    assert (gate.failure.type, gate.failure.message) == ("podium.Rejected", "way too much")
    assert not gate.failure.retryable
    assert step_of(final, "after").state == R.STEP_STATE_SKIPPED
    resolved = of_type(rest, E.RUN_EVENT_TYPE_APPROVAL_RESOLVED)
    assert [(e.decision, e.message) for e in resolved] == [(REJECT, "way too much")]
    if run_state == R.RUN_STATE_FAILED:
        assert final.failure.type == "podium.Rejected"
        assert "way too much" in final.failure.message


@pytest.mark.parametrize("first", ["left", "right"])
async def test_two_approvals_are_resolved_independently(stubs: Stubs, first: str) -> None:
    spec = {
        "steps": [
            {"id": "left", "approval": {"prompt": "left {{ input.n }}"}},
            {"id": "right", "approval": {"prompt": "right {{ input.n + 1 }}"}},
            echo_step("join", "left", "right"),
        ]
    }
    await create_workflow(stubs, "two-gates", spec)
    run = await start_run(stubs, "two-gates", {"n": 1})
    before = await events_until(stubs, run.name, E.RUN_EVENT_TYPE_APPROVAL_REQUESTED, count=2)
    prompts = {e.step_id: e.message for e in of_type(before, E.RUN_EVENT_TYPE_APPROVAL_REQUESTED)}
    assert prompts == {"left": "left 1", "right": "right 2"}
    second = "right" if first == "left" else "left"

    await resolve_approval(stubs, run.name, first, APPROVE, f"{first} ok")

    async def first_done() -> bool:
        return step_of(await get_run(stubs, run.name), first).state == R.STEP_STATE_SUCCEEDED

    await eventually(first_done)
    view = await get_run(stubs, run.name)
    assert view.state == R.RUN_STATE_WAITING_APPROVAL  # the other one still waits
    assert step_of(view, second).state == R.STEP_STATE_WAITING
    assert step_of(view, "join").state == R.STEP_STATE_PENDING

    await resolve_approval(stubs, run.name, second, APPROVE, f"{second} ok")
    rest = await collect_events(stubs, run.name, before[-1].sequence)
    final = await get_run(stubs, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    resolved = of_type(rest, E.RUN_EVENT_TYPE_APPROVAL_RESOLVED)
    assert [(e.step_id, e.message) for e in resolved] == [
        (first, f"{first} ok"),
        (second, f"{second} ok"),
    ]
    for step_id in ("left", "right"):
        assert plain(step_of(final, step_id).output)["comment"] == f"{step_id} ok"


async def test_an_approval_times_out(db_path: str) -> None:
    clock = ManualClock(T0)
    async with serving(db_path, clock=clock) as (_, stubs):
        await create_workflow(stubs, "expiring", approval_then_echo(timeout="600s"))
        run = await start_run(stubs, "expiring", {"amount": 5})
        before = await events_until(stubs, run.name, E.RUN_EVENT_TYPE_APPROVAL_REQUESTED)
        assert before[-1].due_time.ToSeconds() == T0 + 600
        assert step_of(await get_run(stubs, run.name), "gate").due_time.ToSeconds() == T0 + 600
        await armed(clock)
        clock.advance(599)
        await settle()
        assert await state_of(stubs, run.name, "gate") == (
            R.RUN_STATE_WAITING_APPROVAL,
            R.STEP_STATE_WAITING,
        )
        clock.advance(2)
        rest = await collect_events(stubs, run.name, before[-1].sequence)
        final = await get_run(stubs, run.name)
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await resolve_approval(stubs, run.name, "gate", APPROVE)
    assert final.state == R.RUN_STATE_FAILED
    gate = step_of(final, "gate")
    assert gate.state == R.STEP_STATE_FAILED
    assert gate.failure.type == "podium.Timeout"
    assert final.failure.type == "podium.Timeout"
    assert not of_type(rest, E.RUN_EVENT_TYPE_APPROVAL_RESOLVED)
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_resolve_approval_errors(stubs: Stubs) -> None:
    await create_workflow(stubs, "gate-errors", approval_then_echo())
    run = await start_run(stubs, "gate-errors", {"amount": 1})
    await events_until(stubs, run.name, E.RUN_EVENT_TYPE_APPROVAL_REQUESTED)

    async def code_and_reason(
        step_id: str, decision: event_pb2.ApprovalDecision.ValueType = APPROVE
    ) -> tuple[Any, str]:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await resolve_approval(stubs, run.name, step_id, decision)
        return raised.value.code(), error_info(raised.value).reason

    assert await code_and_reason("after") == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "NOT_WAITING_FOR_APPROVAL",
    )
    assert await code_and_reason("nope") == (grpc.StatusCode.NOT_FOUND, "STEP_NOT_FOUND")
    with pytest.raises(grpc.aio.AioRpcError) as unspecified:
        await resolve_approval(stubs, run.name, "gate", event_pb2.APPROVAL_DECISION_UNSPECIFIED)
    assert unspecified.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(unspecified.value)] == ["decision"]
    with pytest.raises(grpc.aio.AioRpcError) as no_run:
        await resolve_approval(stubs, "runs/0123456789abcdef0123456789abcdef", "gate", APPROVE)
    assert no_run.value.code() == grpc.StatusCode.NOT_FOUND
    # None of that changed anything: the approval still waits, then resolves once.
    assert (await get_run(stubs, run.name)).state == R.RUN_STATE_WAITING_APPROVAL
    await resolve_approval(stubs, run.name, "gate", APPROVE)
    second_code, _ = await code_and_reason("gate")
    assert second_code == grpc.StatusCode.FAILED_PRECONDITION
    events = await collect_events(stubs, run.name)
    assert len(of_type(events, E.RUN_EVENT_TYPE_APPROVAL_RESOLVED)) == 1
    assert events[-1].type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED
    finished_code, finished_reason = await code_and_reason("gate")
    assert (finished_code, finished_reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "RUN_ALREADY_ENDED",
    )


async def resolve_when_ready(
    stubs: Stubs, run: str, step_id: str, decision: event_pb2.ApprovalDecision.ValueType
) -> None:
    """ResolveApproval, retried while the restarted server is still resuming the run."""

    async def resolved() -> bool:
        try:
            await resolve_approval(stubs, run, step_id, decision)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            return False
        return True

    await eventually(resolved, what=f"{step_id} resolved")


async def test_an_approval_survives_a_restart(db_path: str) -> None:
    async with serving(db_path) as (server, stubs):
        await create_workflow(stubs, "durable-gate", approval_then_echo())
        run = await start_run(stubs, "durable-gate", {"amount": 7})
        before = await events_until(stubs, run.name, E.RUN_EVENT_TYPE_APPROVAL_REQUESTED)
        await server.stop(0.5)

    async with serving(db_path) as (_, stubs):

        async def waiting_again() -> bool:
            return await state_of(stubs, run.name, "gate") == (
                R.RUN_STATE_WAITING_APPROVAL,
                R.STEP_STATE_WAITING,
            )

        await eventually(waiting_again)
        await resolve_when_ready(stubs, run.name, "gate", APPROVE)
        rest = await collect_events(stubs, run.name, before[-1].sequence)
        final = await get_run(stubs, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    events = before + rest
    assert len(of_type(events, E.RUN_EVENT_TYPE_APPROVAL_REQUESTED)) == 1
    assert len(of_type(events, E.RUN_EVENT_TYPE_APPROVAL_RESOLVED)) == 1
    assert sequences(events) == list(range(1, len(events) + 1))


async def test_a_stopped_server_leaves_the_run_waiting_for_approval(db_path: str) -> None:
    async with serving(db_path) as (server, stubs):
        await create_workflow(stubs, "stored-gate", approval_then_echo())
        run = await start_run(stubs, "stored-gate", {"amount": 7})
        await events_until(stubs, run.name, E.RUN_EVENT_TYPE_APPROVAL_REQUESTED)
        await server.stop(0.5)
    # What the store says (no server: nothing resumes it in between).
    store = SqliteStore(db_path)
    await store.open()
    try:
        view = await store.get_run(run.name.removeprefix("runs/"))
    finally:
        await store.close()
    assert view is not None
    assert view.run.state == RunState.WAITING_APPROVAL


async def test_an_approval_timeout_survives_a_restart(db_path: str) -> None:
    first_clock = ManualClock(T0)
    async with serving(db_path, clock=first_clock) as (server, stubs):
        await create_workflow(stubs, "durable-expiry", approval_then_echo(timeout="600s"))
        run = await start_run(stubs, "durable-expiry", {"amount": 7})
        await events_until(stubs, run.name, E.RUN_EVENT_TYPE_APPROVAL_REQUESTED)
        await armed(first_clock)
        first_clock.advance(500)
        await settle()
        await server.stop(0.5)

    second_clock = ManualClock(T0 + 500)
    async with serving(db_path, clock=second_clock) as (_, stubs):
        await armed(second_clock)
        second_clock.advance(99)
        await settle()
        assert await state_of(stubs, run.name, "gate") == (
            R.RUN_STATE_WAITING_APPROVAL,
            R.STEP_STATE_WAITING,
        )
        second_clock.advance(2)
        events = await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
    assert final.state == R.RUN_STATE_FAILED
    assert step_of(final, "gate").failure.type == "podium.Timeout"
    assert events[-1].type == E.RUN_EVENT_TYPE_RUN_FAILED


# -- a step's own timeout bounds its waits -----------------------------------------------------


async def test_a_step_timeout_ends_a_longer_wait(db_path: str) -> None:
    clock = ManualClock(T0)
    async with serving(db_path, clock=clock) as (_, stubs):
        spec = {"steps": [{"id": "pause", "wait": {"duration": "3600s"}, "timeout": "60s"}]}
        await create_workflow(stubs, "bounded-wait", spec)
        run = await start_run(stubs, "bounded-wait")
        await events_until(stubs, run.name, E.RUN_EVENT_TYPE_STEP_WAITING)
        await armed(clock)
        clock.advance(61)
        # Failed by the step's timeout, before its wait (an hour) could end.
        view = await step_reaches(stubs, run.name, "pause", R.STEP_STATE_FAILED)
        await collect_events(stubs, run.name)
    pause = step_of(view, "pause")
    assert pause.state == R.STEP_STATE_FAILED
    assert pause.failure.type == "podium.Timeout"


async def test_a_step_timeout_ends_an_approval(db_path: str) -> None:
    clock = ManualClock(T0)
    async with serving(db_path, clock=clock) as (_, stubs):
        spec = approval_then_echo()
        spec["steps"][0]["timeout"] = "60s"
        await create_workflow(stubs, "bounded-gate", spec)
        run = await start_run(stubs, "bounded-gate", {"amount": 1})
        await events_until(stubs, run.name, E.RUN_EVENT_TYPE_APPROVAL_REQUESTED)
        await armed(clock)
        clock.advance(61)
        view = await step_reaches(stubs, run.name, "gate", R.STEP_STATE_FAILED)
        await collect_events(stubs, run.name)
    gate = step_of(view, "gate")
    assert gate.state == R.STEP_STATE_FAILED
    assert gate.failure.type == "podium.Timeout"


@pytest.mark.parametrize(
    ("approval", "fields"),
    [
        (
            X.ResolveApprovalRequest(
                run="nope", step_id="ok", decision=E.APPROVAL_DECISION_APPROVE
            ),
            ["run"],
        ),
        (X.ResolveApprovalRequest(run="runs/x", decision=E.APPROVAL_DECISION_REJECT), ["step_id"]),
        (X.ResolveApprovalRequest(run="runs/x", step_id="ok"), ["decision"]),
        (
            X.ResolveApprovalRequest(
                run="runs/x", step_id="ok", decision=E.ApprovalDecision.ValueType(9)
            ),
            ["decision"],
        ),
        (X.ResolveApprovalRequest(), ["run", "step_id", "decision"]),
    ],
)
async def test_resolve_approval_rejects_bad_requests_with_their_fields(
    stubs: Stubs, approval: X.ResolveApprovalRequest, fields: list[str]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stubs.executions.ResolveApproval(approval)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in field_violations(error.value)] == fields
