"""Callback steps through a real server: the token is issued once (event and
GetRun), CompleteCallback with it completes the step with its payload, a
token is single-use, an unknown one is NOT_FOUND, another tenant cannot use
it, the step's timeout spends it, and a waiting callback survives a restart."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from podium.core.clock import ManualClock
from podium.identity.principal import Role
from podium.server.security import SecurityConfig
from podium.testing import (
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    error_info,
    eventually,
    get_run,
    of_type,
    plain,
    sequences,
    serving,
    start_run,
    step_of,
)
from podium.testing.identity import new_token, stubs_for
from podium.testing.values import json_value
from podium.v1 import event_pb2, execution_service_pb2, run_pb2

E = event_pb2
R = run_pb2
X = execution_service_pb2


def hook_then_echo(**callback: Any) -> dict[str, Any]:
    return {
        "steps": [
            {"id": "hook", "callback": callback},
            echo_step("after", "hook", input={"got": "steps.hook.output"}),
        ]
    }


async def complete(stubs: Stubs, token: str, payload: Any = None) -> X.CompleteCallbackResponse:
    request = X.CompleteCallbackRequest(token=token)
    if payload is not None:
        request.payload.CopyFrom(json_value(payload))
    response: X.CompleteCallbackResponse = await stubs.executions.CompleteCallback(request)
    return response


async def issued_token(stubs: Stubs, run: str) -> str:
    """The token of the CALLBACK_ISSUED event, checked against GetRun's."""
    token = ""

    async def ready() -> bool:
        nonlocal token
        token = step_of(await get_run(stubs, run), "hook").callback_token
        return bool(token)

    await eventually(ready, what="callback token")
    events = await collect_events(stubs, run, limit=3)
    while not of_type(events, E.RUN_EVENT_TYPE_CALLBACK_ISSUED):
        events += await collect_events(stubs, run, events[-1].sequence, limit=1)
    (event,) = of_type(events, E.RUN_EVENT_TYPE_CALLBACK_ISSUED)
    assert event.callback_token == token and event.step_id == "hook"
    return token


async def test_a_callback_completes_once_with_its_payload() -> None:
    async with serving() as (_, stubs):
        await create_workflow(stubs, "hooked", hook_then_echo())
        run = await start_run(stubs, "hooked")
        token = await issued_token(stubs, run.name)
        assert len(token) >= 40  # 32 random bytes
        assert token.startswith("cb_")  # never "-": a command line takes it as is
        view = await get_run(stubs, run.name)
        assert step_of(view, "hook").state == R.STEP_STATE_WAITING
        done = await complete(stubs, token, {"status": "paid"})
        assert (done.run, done.step_id) == (run.name, "hook")
        with pytest.raises(grpc.aio.AioRpcError) as reused:
            await complete(stubs, token, {"status": "again"})
        events = await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
    assert reused.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(reused.value).reason == "CALLBACK_NOT_FOUND"
    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    assert plain(step_of(final, "hook").output) == {"status": "paid"}
    assert plain(step_of(final, "after").output) == {"got": {"status": "paid"}}
    assert step_of(final, "hook").callback_token == ""  # spent: no longer shown
    assert len(of_type(events, E.RUN_EVENT_TYPE_CALLBACK_COMPLETED)) == 1
    assert sequences(events) == list(range(1, len(events) + 1))


async def test_tokens_are_unguessable_and_a_wrong_one_is_not_found() -> None:
    async with serving() as (_, stubs):
        await create_workflow(stubs, "hooked", hook_then_echo())
        first = await start_run(stubs, "hooked")
        second = await start_run(stubs, "hooked")
        tokens = {await issued_token(stubs, first.name), await issued_token(stubs, second.name)}
        assert len(tokens) == 2
        real = next(iter(tokens))
        # One character changed (a token's last one is "A" one time in 16).
        altered = real[:-1] + ("B" if real.endswith("A") else "A")
        for wrong in ("nope", altered, "x" * 300):
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await complete(stubs, wrong, 1)
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await stubs.executions.CompleteCallback(X.CompleteCallbackRequest())
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        for run in (first, second):
            assert step_of(await get_run(stubs, run.name), "hook").state == R.STEP_STATE_WAITING


async def test_a_timed_out_callback_spends_its_token() -> None:
    clock = ManualClock()
    async with serving(clock=clock) as (_, stubs):
        await create_workflow(stubs, "late", hook_then_echo(timeout="60s"))
        run = await start_run(stubs, "late")
        token = await issued_token(stubs, run.name)

        async def armed() -> bool:
            return clock.sleepers >= 1

        await eventually(armed)
        clock.advance(61)
        await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
        with pytest.raises(grpc.aio.AioRpcError) as spent:
            await complete(stubs, token, 1)
    assert final.state == R.RUN_STATE_FAILED
    assert step_of(final, "hook").failure.type == "podium.Timeout"
    assert spent.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_waiting_callback_survives_a_restart(db_path: str) -> None:
    async with serving(db_path) as (server, stubs):
        await create_workflow(stubs, "durable", hook_then_echo())
        run = await start_run(stubs, "durable")
        token = await issued_token(stubs, run.name)
        await server.stop(0.5)

    async with serving(db_path) as (_, stubs):

        async def completed() -> bool:
            try:
                await complete(stubs, token, "after restart")
            except grpc.aio.AioRpcError as error:  # still resuming
                if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                return False
            return True

        await eventually(completed)
        events = await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    assert plain(step_of(final, "hook").output) == "after restart"
    # The same token: no second one was issued.
    assert len(of_type(events, E.RUN_EVENT_TYPE_CALLBACK_ISSUED)) == 1


async def test_another_tenant_cannot_complete_a_callback(db_path: str) -> None:
    async with serving(db_path, security=SecurityConfig(auth=True)) as served:
        ours = await new_token(served.server, Role.DEVELOPER, tenant="acme")
        theirs = await new_token(served.server, Role.DEVELOPER, tenant="other")
        async with stubs_for(served.address, ours) as stubs:
            await create_workflow(stubs, "hooked", hook_then_echo())
            run = await start_run(stubs, "hooked")
            token = await issued_token(stubs, run.name)
        async with stubs_for(served.address, theirs) as intruder:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await complete(intruder, token, "stolen")
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        async with stubs_for(served.address, ours) as stubs:
            await complete(stubs, token, "ours")
            await collect_events(stubs, run.name)
            final = await get_run(stubs, run.name)
    assert plain(step_of(final, "hook").output) == "ours"


async def test_cancelling_the_run_spends_the_token_and_ends_the_signal_wait() -> None:
    spec = {
        "steps": [
            {"id": "hook", "callback": {}},
            {"id": "gate", "waitForSignal": {"name": "go"}},
        ]
    }
    async with serving() as (_, stubs):
        await create_workflow(stubs, "cancelled", spec)
        run = await start_run(stubs, "cancelled")
        token = await issued_token(stubs, run.name)
        await stubs.executions.CancelRun(X.CancelRunRequest(name=run.name, reason="stop"))
        final = await get_run(stubs, run.name)
        with pytest.raises(grpc.aio.AioRpcError) as spent:
            await complete(stubs, token, 1)
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await stubs.executions.SignalRun(X.SignalRunRequest(run=run.name, name="go"))
    assert final.state == R.RUN_STATE_CANCELLED
    assert {step_of(final, s).state for s in ("hook", "gate")} == {R.STEP_STATE_CANCELLED}
    assert spent.value.code() == grpc.StatusCode.NOT_FOUND
    assert ended.value.code() == grpc.StatusCode.FAILED_PRECONDITION
