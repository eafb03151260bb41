"""Signals through a real server: SignalRun before and after a
wait_for_signal step waits, filters over the payload, the step's timeout on a
ManualClock, idempotency by request id, runs that ended, bad input, and a
restart while the step waits (kill -9: tests/e2e/test_signal_crash.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from podium.core.clock import ManualClock
from podium.testing import (
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
    sequences,
    serving,
    start_run,
    step_of,
)
from podium.testing.values import json_value
from podium.v1 import event_pb2, execution_service_pb2, run_pb2

E = event_pb2
R = run_pb2
X = execution_service_pb2


async def signal(
    stubs: Stubs, run: str, name: str, payload: Any = None, request_id: str = ""
) -> X.SignalRunResponse:
    request = X.SignalRunRequest(run=run, name=name, request_id=request_id)
    if payload is not None:
        request.payload.CopyFrom(json_value(payload))
    response: X.SignalRunResponse = await stubs.executions.SignalRun(request)
    return response


async def waiting(stubs: Stubs, run: str, step_id: str) -> None:
    async def ready() -> bool:
        return step_of(await get_run(stubs, run), step_id).state == R.STEP_STATE_WAITING

    await eventually(ready, what=f"{step_id} waiting")


def gate_then_echo(**wait: Any) -> dict[str, Any]:
    return {
        "steps": [
            {"id": "gate", "waitForSignal": {"name": "go", **wait}},
            echo_step("after", "gate", input={"got": "steps.gate.output"}),
        ]
    }


async def test_a_signal_sent_while_the_step_waits_is_its_output() -> None:
    async with serving() as (_, stubs):
        await create_workflow(stubs, "gated", gate_then_echo())
        run = await start_run(stubs, "gated")
        await waiting(stubs, run.name, "gate")
        view = await get_run(stubs, run.name)
        assert "signal 'go'" in step_of(view, "gate").reason
        sent = await signal(stubs, run.name, "go", {"ok": True, "n": 3})
        assert (sent.position, sent.consumed_by) == (1, "gate")
        events = await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    assert plain(step_of(final, "gate").output) == {"ok": True, "n": 3}
    assert plain(step_of(final, "after").output) == {"got": {"ok": True, "n": 3}}
    (received,) = of_type(events, E.RUN_EVENT_TYPE_SIGNAL_RECEIVED)
    assert (received.message, received.step_id, received.actor) == ("go", "gate", "anonymous")
    assert plain(received.output) == {"ok": True, "n": 3}
    assert sequences(events) == list(range(1, len(events) + 1))


async def test_signals_sent_before_the_steps_wait_are_kept_in_order() -> None:
    clock = ManualClock()
    spec = {
        "steps": [
            {"id": "pause", "wait": {"duration": "60s"}},
            {"id": "first", "dependsOn": ["pause"], "waitForSignal": {"name": "item"}},
            {"id": "second", "dependsOn": ["first"], "waitForSignal": {"name": "item"}},
        ]
    }
    async with serving(clock=clock) as (_, stubs):
        await create_workflow(stubs, "kept", spec)
        run = await start_run(stubs, "kept")
        await waiting(stubs, run.name, "pause")
        other = await signal(stubs, run.name, "other", "ignored")
        one = await signal(stubs, run.name, "item", 1)
        two = await signal(stubs, run.name, "item", 2)
        assert [(s.position, s.consumed_by) for s in (other, one, two)] == [
            (1, ""),
            (2, ""),
            (3, ""),
        ]
        clock.advance(61)
        events = await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    assert plain(step_of(final, "first").output) == 1
    assert plain(step_of(final, "second").output) == 2
    received = of_type(events, E.RUN_EVENT_TYPE_SIGNAL_RECEIVED)
    assert [(e.message, e.step_id) for e in received] == [("other", ""), ("item", ""), ("item", "")]


async def test_a_filter_picks_the_signal_meant_for_the_run() -> None:
    spec = {
        "steps": [
            {
                "id": "gate",
                "waitForSignal": {"name": "paid", "filter": "payload.order == input.order"},
            }
        ]
    }
    async with serving() as (_, stubs):
        await create_workflow(stubs, "filtered", spec)
        run = await start_run(stubs, "filtered", {"order": "A-1"})
        await waiting(stubs, run.name, "gate")
        # Another order's, and a payload the filter cannot read: neither matches, nothing fails.
        assert (await signal(stubs, run.name, "paid", {"order": "B-2"})).consumed_by == ""
        assert (await signal(stubs, run.name, "paid", "not an object")).consumed_by == ""
        assert (await signal(stubs, run.name, "paid", {"amount": 5})).consumed_by == ""
        assert step_of(await get_run(stubs, run.name), "gate").state == R.STEP_STATE_WAITING
        matched = await signal(stubs, run.name, "paid", {"order": "A-1", "amount": 5})
        assert matched.consumed_by == "gate"
        await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED
    assert plain(step_of(final, "gate").output) == {"order": "A-1", "amount": 5}


async def test_without_a_signal_the_step_times_out() -> None:
    clock = ManualClock()
    async with serving(clock=clock) as (_, stubs):
        await create_workflow(stubs, "late", gate_then_echo(timeout="30s"))
        run = await start_run(stubs, "late")
        await waiting(stubs, run.name, "gate")
        view = await get_run(stubs, run.name)
        assert step_of(view, "gate").due_time.ToSeconds() == clock.now() + 30

        async def armed() -> bool:
            return clock.sleepers >= 1

        await eventually(armed)
        clock.advance(29)
        await asyncio.sleep(0.05)
        assert step_of(await get_run(stubs, run.name), "gate").state == R.STEP_STATE_WAITING
        clock.advance(2)
        await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
        # A signal to the run that ended is refused.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await signal(stubs, run.name, "go", 1)
    assert final.state == R.RUN_STATE_FAILED
    gate = step_of(final, "gate")
    assert gate.state == R.STEP_STATE_FAILED
    assert gate.failure.type == "podium.Timeout"
    assert "no signal 'go'" in gate.failure.message
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(refused.value).reason == "RUN_ALREADY_ENDED"


async def test_a_signal_is_idempotent_by_its_request_id() -> None:
    async with serving() as (_, stubs):
        await create_workflow(stubs, "once", gate_then_echo())
        run = await start_run(stubs, "once")
        await waiting(stubs, run.name, "gate")
        first = await signal(stubs, run.name, "go", {"v": 1}, request_id="req-1")
        again = await signal(stubs, run.name, "go", {"v": 1}, request_id="req-1")
        assert (again.position, again.consumed_by) == (first.position, "gate")
        with pytest.raises(grpc.aio.AioRpcError) as reused:
            await signal(stubs, run.name, "go", {"v": 2}, request_id="req-1")
        events = await collect_events(stubs, run.name)
        # After the run ended, the accepted request is still answered the same.
        late = await signal(stubs, run.name, "go", {"v": 1}, request_id="req-1")
    assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_info(reused.value).reason == "REQUEST_ID_REUSED"
    assert len(of_type(events, E.RUN_EVENT_TYPE_SIGNAL_RECEIVED)) == 1
    assert late.position == first.position


async def test_bad_signals_are_invalid_arguments_and_change_nothing() -> None:
    async with serving() as (_, stubs):
        await create_workflow(stubs, "strict", gate_then_echo())
        run = await start_run(stubs, "strict")
        await waiting(stubs, run.name, "gate")
        cases = [
            (X.SignalRunRequest(run=run.name, name=""), "name"),
            (X.SignalRunRequest(run=run.name, name="has space"), "name"),
            (X.SignalRunRequest(run="nope", name="go"), "run"),
            (X.SignalRunRequest(run=run.name, name="go", request_id="x" * 129), "request_id"),
        ]
        for request, field in cases:
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await stubs.executions.SignalRun(request)
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in [f for f, _ in field_violations(bad.value)]
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await signal(stubs, "runs/0123456789abcdef0123456789abcdef", "go")
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        view = await get_run(stubs, run.name)
        assert step_of(view, "gate").state == R.STEP_STATE_WAITING
        events = await collect_events(stubs, run.name, limit=1)
        assert not of_type(events, E.RUN_EVENT_TYPE_SIGNAL_RECEIVED)


async def test_invalid_wait_for_signal_steps_are_refused_by_field() -> None:
    spec = {
        "steps": [
            {"id": "a", "waitForSignal": {"name": "bad name", "timeout": "0s"}},
            {"id": "b", "waitForSignal": {"name": "ok", "filter": "payload."}},
            {"id": "c", "agent": "echo", "waitForSignal": {"name": "ok"}},
        ]
    }
    async with serving() as (_, stubs):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await create_workflow(stubs, "invalid", spec)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = [f for f, _ in field_violations(bad.value)]
    assert "spec.steps[0].wait_for_signal.name" in fields
    assert "spec.steps[0].wait_for_signal.timeout" in fields
    assert "spec.steps[1].wait_for_signal.filter" in fields
    assert "spec.steps[2].wait_for_signal" in fields


async def test_kept_signals_and_a_waiting_step_survive_a_restart(db_path: str) -> None:
    clock = ManualClock()
    spec = {
        "steps": [
            {"id": "first", "waitForSignal": {"name": "a", "timeout": "3600s"}},
            {"id": "second", "dependsOn": ["first"], "waitForSignal": {"name": "b"}},
        ]
    }
    async with serving(db_path, clock=clock) as (server, stubs):
        await create_workflow(stubs, "durable", spec)
        run = await start_run(stubs, "durable")
        await waiting(stubs, run.name, "first")
        due = step_of(await get_run(stubs, run.name), "first").due_time.ToSeconds()
        kept = await signal(stubs, run.name, "b", "for second", request_id="b-1")
        assert kept.consumed_by == ""
        await server.stop(0.5)

    async with serving(db_path, clock=ManualClock(clock.now() + 10)) as (_, stubs):
        await waiting(stubs, run.name, "first")
        view = await get_run(stubs, run.name)
        assert step_of(view, "first").due_time.ToSeconds() == due

        async def delivered() -> bool:
            try:
                await signal(stubs, run.name, "a", "for first")
            except grpc.aio.AioRpcError as error:  # still resuming
                if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                return False
            return True

        await eventually(delivered)
        again = await signal(stubs, run.name, "b", "for second", request_id="b-1")
        assert again.position == kept.position
        events = await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    assert plain(step_of(final, "first").output) == "for first"
    assert plain(step_of(final, "second").output) == "for second"
    assert len(of_type(events, E.RUN_EVENT_TYPE_SIGNAL_RECEIVED)) == 2
    assert sequences(events) == list(range(1, len(events) + 1))
