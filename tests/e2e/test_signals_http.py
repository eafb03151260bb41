"""A real `podium serve` process: the order-webhook example run with the CLI
(a signal, an `http` step against a local endpoint with a secret header, a
child workflow, a signed notification), and kill -9 while a run waits for a signal and a
callback: after the restart both still wait, and complete."""

from __future__ import annotations

import json
from collections.abc import Callable

import grpc

from podium.testing import (
    ServerProcess,
    Stubs,
    collect_events,
    create_workflow,
    eventually,
    get_run,
    start_run,
    step_of,
    step_reaches,
)
from podium.testing.http_endpoint import http_endpoint
from podium.v1 import event_pb2, execution_service_pb2, run_pb2

StartServing = Callable[..., ServerProcess]
E = event_pb2
R = run_pb2
X = execution_service_pb2
KEY = "fulfilment-key-5d1e"
SECRETS = ("--secret", "fulfilment=env:PODIUM_E2E_KEY", "--secret", "hook=env:PODIUM_E2E_KEY")
ENV = {"PODIUM_E2E_KEY": KEY}


def test_the_order_webhook_example_runs_from_the_cli(start_serving: StartServing) -> None:
    with http_endpoint() as endpoint:
        served = start_serving(env=ENV, args=("--http-allow", "127.0.0.1", *SECRETS))
        for example in ("order-receipt", "order-webhook"):  # the child workflow first
            applied = served.cli("workflows", "apply", "-f", f"examples/{example}.yaml")
            assert applied.returncode == 0, applied.stderr
        run_input = json.dumps({"order": "A-1", "fulfilment_url": endpoint.url("/orders")})
        started = served.cli(
            "runs",
            "start",
            "order-webhook",
            "--input",
            run_input,
            "--notify-url",
            endpoint.url("/done"),
            "--notify-secret",
            "hook",
            "--json",
        )
        assert started.returncode == 0, started.stderr
        run = json.loads(started.stdout)["name"]
        other = served.cli("runs", "signal", run, "payment", "--payload", '{"order": "B-2"}')
        assert other.returncode == 0, other.stderr
        assert "kept by the run" in other.stdout
        paid = served.cli(
            "runs", "signal", run, "payment", "--payload", '{"order": "A-1", "amount": 42}'
        )
        assert paid.returncode == 0, paid.stderr
        watched = served.cli("runs", "watch", run)
        assert "RUN_SUCCEEDED" in watched.stdout, watched.stdout + watched.stderr
        fetched = json.loads(served.cli("runs", "get", run, "--json").stdout)
        shown = served.cli("runs", "get", run)
        children = json.loads(served.cli("runs", "list", "--parent", run, "--json").stdout)
        bad = served.cli("runs", "signal", run, "payment", "--payload", "{not json")
        ended = served.cli("runs", "signal", run, "payment")
    assert fetched["output"]["paid"] == 42
    assert fetched["output"]["receipt"] == "Order A-1: paid 42"
    (child,) = children["runs"]
    assert (child["workflow"], child["parent_run"], child["parent_step"]) == (
        "workflows/order-receipt",
        run,
        "receipt",
    )
    assert child["state"] == "RUN_STATE_SUCCEEDED"
    assert child["name"] in shown.stdout and "child runs" in shown.stdout
    posted = endpoint.requests[0]
    assert (posted.method, posted.path) == ("POST", "/orders/A-1")
    assert posted.json() == {"order": "A-1", "amount": 42}
    assert posted.headers["X-Api-Key"] == KEY
    assert fetched["output"]["fulfilment"]["headers"]["X-Api-Key"] == "[redacted]"
    assert KEY not in json.dumps(fetched) + watched.stdout
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert ended.returncode != 0 and "FAILED_PRECONDITION" in ended.stderr
    assert len(ended.stderr.strip().splitlines()) == 1


async def test_waiting_steps_survive_kill_9(start_serving: StartServing) -> None:
    spec = {
        "steps": [
            {"id": "gate", "waitForSignal": {"name": "go"}},
            {"id": "hook", "callback": {}},
        ]
    }
    first = start_serving()
    async with grpc.aio.insecure_channel(first.address) as channel:
        stubs = Stubs.on(channel)
        await create_workflow(stubs, "waits", spec)
        run = await start_run(stubs, "waits")
        await step_reaches(stubs, run.name, "gate", R.STEP_STATE_WAITING)
        await step_reaches(stubs, run.name, "hook", R.STEP_STATE_WAITING)
        token = step_of(await get_run(stubs, run.name), "hook").callback_token
        kept = await stubs.executions.SignalRun(
            X.SignalRunRequest(run=run.name, name="later", request_id="r-1")
        )
    assert token and kept.consumed_by == ""
    first.kill()  # SIGKILL: nothing flushed, nothing shut down

    second = start_serving()
    async with grpc.aio.insecure_channel(second.address) as channel:
        stubs = Stubs.on(channel)

        async def reissued() -> bool:  # shown again once the resumed step waits
            return step_of(await get_run(stubs, run.name), "hook").callback_token == token

        await eventually(reissued, what="the same token after the restart")
        again = await stubs.executions.SignalRun(
            X.SignalRunRequest(run=run.name, name="later", request_id="r-1")
        )
        assert again.position == kept.position
        sent = X.SignalRunResponse()

        async def signalled() -> bool:
            nonlocal sent
            try:
                sent = await stubs.executions.SignalRun(
                    X.SignalRunRequest(run=run.name, name="go", request_id="go-1")
                )
            except grpc.aio.AioRpcError as error:  # the run is still being resumed
                if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                return False
            return True

        await eventually(signalled, what="the signal accepted after the restart")
        assert sent.consumed_by == "gate"
        completed = second.cli("runs", "complete-callback", token, "--payload", '"shipped"')
        assert completed.returncode == 0, completed.stderr
        assert "completed hook of " + run.name in completed.stdout
        events = await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
        try:
            await stubs.executions.CompleteCallback(X.CompleteCallbackRequest(token=token))
            reused = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as error:
            reused = error.code()
    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    assert step_of(final, "hook").output.string_value == "shipped"
    assert reused == grpc.StatusCode.NOT_FOUND
    assert len([e for e in events if e.type == E.RUN_EVENT_TYPE_CALLBACK_ISSUED]) == 1
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
