"""The builtin `http` agent through a real server against a local endpoint:
templates, JSON and text responses, expected statuses, retryable (429/5xx)
against terminal statuses through the step's retry policy, the destination
allow-list (loopback refused by default, by address and by a host name that
resolves to it), and secret header values that reach the endpoint but never
the run's events, GetRun or the database file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import grpc
import pytest

from podium.egress.settings import EgressSettings
from podium.testing import (
    create_workflow,
    field_violations,
    get_run,
    of_type,
    plain,
    run_to_end,
    serving,
    step_of,
)
from podium.testing.http_endpoint import Reply, http_endpoint
from podium.v1 import event_pb2, run_pb2, workflow_service_pb2

E = event_pb2
R = run_pb2
SECRET = "s3cr3t-value-never-stored-7f3a"
ALLOW_LOOPBACK = EgressSettings.parse(allow=["127.0.0.1"])


def http_step(config: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"steps": [{"id": "call", "agent": "http", "config": config, **fields}]}


RETRY = [{"errorEquals": ["http.Retryable"], "interval": "0.01s", "maxAttempts": 3}]


async def test_a_templated_post_returns_the_json_answer(db_path: str) -> None:
    with http_endpoint() as endpoint:
        async with serving(db_path, egress=ALLOW_LOOPBACK) as (_, stubs):
            config = {
                "method": "POST",
                "url": endpoint.url("/orders/{{ input.id }}?x=1"),
                "body": "{{ input.order }}",
                "headers": {"Content-Type": "application/json"},
            }
            await create_workflow(
                stubs, "post", http_step(config, input={"id": "input.id", "order": "input.order"})
            )
            view, _ = await run_to_end(stubs, "post", {"id": "A-1", "order": {"qty": 2}})
    assert view.state == R.RUN_STATE_SUCCEEDED, view.failure
    (request,) = endpoint.requests
    assert (request.method, request.path) == ("POST", "/orders/A-1?x=1")
    assert request.json() == {"qty": 2}
    output = plain(step_of(view, "call").output)
    assert output["status"] == 200
    assert output["body"]["path"] == "/orders/A-1?x=1"


async def test_a_text_answer_and_an_expected_status(db_path: str) -> None:
    with http_endpoint() as endpoint:
        endpoint.script(Reply(202, b"accepted", "text/plain"))
        async with serving(db_path, egress=ALLOW_LOOPBACK) as (_, stubs):
            config = {"url": endpoint.url("/"), "expected_statuses": [202], "response": "text"}
            await create_workflow(stubs, "text", http_step(config))
            view, _ = await run_to_end(stubs, "text")
    assert view.state == R.RUN_STATE_SUCCEEDED, view.failure
    assert plain(step_of(view, "call").output) == {"status": 202, "body": "accepted"}


async def test_retryable_statuses_are_retried_by_the_steps_policy(db_path: str) -> None:
    with http_endpoint() as endpoint:
        endpoint.script(Reply(503, b"busy"), Reply(429, b"slow down"))
        async with serving(db_path, egress=ALLOW_LOOPBACK) as (_, stubs):
            await create_workflow(stubs, "retried", http_step({"url": endpoint.url()}, retry=RETRY))
            view, events = await run_to_end(stubs, "retried")
    assert view.state == R.RUN_STATE_SUCCEEDED, view.failure
    call = step_of(view, "call")
    assert [a.state for a in call.attempts] == [
        R.ATTEMPT_STATE_FAILED,
        R.ATTEMPT_STATE_FAILED,
        R.ATTEMPT_STATE_SUCCEEDED,
    ]
    assert [a.failure.type for a in call.attempts[:2]] == ["http.Retryable"] * 2
    assert "HTTP 503" in call.attempts[0].failure.message
    assert len(endpoint.requests) == 3
    assert len(of_type(events, E.RUN_EVENT_TYPE_STEP_RETRYING)) == 2


async def test_a_terminal_status_fails_at_once(db_path: str) -> None:
    with http_endpoint() as endpoint:
        endpoint.script(Reply(404, b"no such order"))
        async with serving(db_path, egress=ALLOW_LOOPBACK) as (_, stubs):
            await create_workflow(stubs, "missing", http_step({"url": endpoint.url()}, retry=RETRY))
            view, _ = await run_to_end(stubs, "missing")
    assert view.state == R.RUN_STATE_FAILED
    call = step_of(view, "call")
    assert len(call.attempts) == 1
    assert call.failure.type == "http.Status"
    assert "HTTP 404" in call.failure.message
    assert len(endpoint.requests) == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_loopback_is_refused_unless_allowed(db_path: str, host: str) -> None:
    with http_endpoint() as endpoint:
        async with serving(db_path) as (_, stubs):  # no --http-allow
            await create_workflow(
                stubs, "inside", http_step({"url": endpoint.url("/", host=host)}, retry=RETRY)
            )
            view, _ = await run_to_end(stubs, "inside")
    assert view.state == R.RUN_STATE_FAILED
    call = step_of(view, "call")
    assert call.failure.type == "http.DestinationRefused"
    assert "not allowed" in call.failure.message
    assert len(call.attempts) == 1  # never retried
    assert endpoint.requests == []


async def test_a_link_local_address_is_refused(db_path: str) -> None:
    async with serving(db_path, egress=ALLOW_LOOPBACK) as (_, stubs):
        url = "http://169.254.169.254/latest/meta-data/"
        await create_workflow(stubs, "metadata", http_step({"url": url}))
        view, _ = await run_to_end(stubs, "metadata")
    assert step_of(view, "call").failure.type == "http.DestinationRefused"


async def test_secret_headers_reach_the_endpoint_and_are_never_stored(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODIUM_TEST_API_TOKEN", SECRET)
    egress = EgressSettings.parse(secrets=["api=env:PODIUM_TEST_API_TOKEN"], allow=["127.0.0.1"])
    config = {
        "url": "{{ input.url }}",
        "headers": {"Authorization": {"secret": "api", "prefix": "Bearer "}},
    }
    with http_endpoint() as endpoint:
        # The endpoint echoes the request's headers, Authorization included, then fails once.
        endpoint.script(Reply(500, None))
        async with serving(db_path, egress=egress) as (_, stubs):
            await create_workflow(
                stubs, "secret", http_step(config, retry=RETRY, input={"url": "input.url"})
            )
            workflow = await stubs.workflows.GetWorkflow(
                workflow_service_pb2.GetWorkflowRequest(name="workflows/secret")
            )
            view, events = await run_to_end(stubs, "secret", {"url": endpoint.url("/echo")})
            again = await get_run(stubs, view.name)
    assert view.state == R.RUN_STATE_SUCCEEDED, view.failure
    assert endpoint.requests[0].headers["Authorization"] == f"Bearer {SECRET}"
    echoed = plain(step_of(view, "call").output)["body"]["headers"]["Authorization"]
    assert echoed == "Bearer [redacted]"
    for shown in (str(view), str(again), str(workflow), *(str(e) for e in events)):
        assert SECRET not in shown
    database = b"".join(
        p.read_bytes() for p in Path(db_path).parent.iterdir() if p.name.startswith("podium.db")
    )
    assert SECRET.encode() not in database
    assert os.environ["PODIUM_TEST_API_TOKEN"] == SECRET


async def test_bad_http_configs_are_refused_by_field() -> None:
    config = {
        "url": "{{ input. }}",
        "method": "GET",
        "headers": {"X-Key": {"secret": "unknown"}, "X-Bad": 5},
        "timeout_s": -1,
        "expected_statuses": [99],
        "response": "xml",
        "bogus": True,
    }
    async with serving() as (_, stubs):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await create_workflow(stubs, "bad", http_step(config))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = {f for f, _ in field_violations(bad.value)}
    base = "spec.steps[0].config."
    for field in (
        "url",
        "headers.X-Key.secret",
        "headers.X-Bad",
        "timeout_s",
        "expected_statuses",
        "response",
        "bogus",
    ):
        assert base + field in fields, (field, fields)


async def test_events_of_a_refused_call_name_the_host_only(db_path: str) -> None:
    async with serving(db_path) as (_, stubs):
        url = "http://10.1.2.3/internal?token=abc"
        await create_workflow(stubs, "private", http_step({"url": url}))
        view, events = await run_to_end(stubs, "private")
    failed = of_type(events, E.RUN_EVENT_TYPE_STEP_FAILED)
    assert failed and "10.1.2.3" in failed[-1].failure.message
    assert view.state == R.RUN_STATE_FAILED
    assert "token=abc" not in str(view) + "".join(str(e) for e in events)
