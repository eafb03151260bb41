"""The HTTP side (`serve --http-address`) with plain HTTP requests: Connect with JSON and
binary bodies, a server-streaming WatchRun over Connect's envelopes, gRPC-Web, HTTP/2, gRPC,
the same google.rpc error details as gRPC, the same authentication, roles, tenants, rate
limits and audit as gRPC, and CORS."""

from __future__ import annotations

import base64
import json
import ssl
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2

from podium.core.clock import ManualClock
from podium.identity.principal import Role
from podium.server.http.serving import HttpSettings
from podium.server.security import SecurityConfig, TlsFiles
from podium.testing import (
    HoldAgent,
    InProcessServer,
    Stubs,
    echo_step,
    error_info,
    plugins_with,
    serving,
)
from podium.testing.identity import make_ca, make_certificate, new_token, stubs_for
from podium.testing.waiting import eventually
from podium.v1 import control_service_pb2, execution_service_pb2, identity_service_pb2

X = execution_service_pb2
ORIGIN = "http://console.example"
JSON = {"content-type": "application/json"}
WORKFLOW = {
    "workflowId": "greet",
    "spec": {
        "steps": [
            echo_step("hello", input={"text": "input.name"}),
            echo_step("shout", "hello", input={"text": "steps.hello.output.text"}),
        ],
        "output": {"text": "steps.shout.output.text"},
    },
}


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[InProcessServer]:
    settings = HttpSettings("127.0.0.1:0", cors_origins=(ORIGIN,))
    async with serving(str(tmp_path / "podium.db"), http=settings) as served:
        yield served


@pytest.fixture
async def http(server: InProcessServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
        yield client


async def call(
    http: httpx.AsyncClient, method: str, body: dict[str, Any], **headers: str
) -> httpx.Response:
    return await http.post(f"/podium.v1.{method}", json=body, headers=headers)


def details(response: httpx.Response) -> dict[str, bytes]:
    """Connect's error details by type name, their values decoded (unpadded base64)."""
    body = response.json()
    return {
        d["type"]: base64.b64decode(d["value"] + "=" * (-len(d["value"]) % 4))
        for d in body.get("details", [])
    }


def reason(response: httpx.Response) -> str:
    info = error_details_pb2.ErrorInfo.FromString(details(response)["google.rpc.ErrorInfo"])
    assert info.domain == "podium"
    return str(info.reason)


def frames(body: bytes) -> list[tuple[int, bytes]]:
    """Connect / gRPC-Web envelopes: (flags, payload)."""
    found, at = [], 0
    while at < len(body):
        flags, size = struct.unpack(">BI", body[at : at + 5])
        found.append((flags, body[at + 5 : at + 5 + size]))
        at += 5 + size
    return found


def envelope(payload: bytes) -> bytes:
    return struct.pack(">BI", 0, len(payload)) + payload


async def test_json_in_json_out_applies_starts_and_reads_a_run(
    http: httpx.AsyncClient,
) -> None:
    applied = await call(http, "WorkflowService/CreateWorkflow", WORKFLOW)
    assert applied.status_code == 200, applied.text
    assert applied.headers["content-type"] == "application/json"
    assert applied.json()["workflow"]["version"] == "1"  # int64: a string in JSON
    started = await call(
        http, "ExecutionService/StartRun", {"workflow": "workflows/greet", "input": {"name": "Ada"}}
    )
    assert started.status_code == 200, started.text
    name = started.json()["run"]["name"]
    watched = await http.post(
        "/podium.v1.ProgressService/WatchRun",
        content=envelope(json.dumps({"run": name}).encode()),
        headers={"content-type": "application/connect+json"},
    )
    assert watched.status_code == 200
    got = await call(http, "ExecutionService/GetRun", {"name": name})
    run = got.json()["run"]
    assert run["state"] == "RUN_STATE_SUCCEEDED"
    assert run["output"] == {"text": "Ada"}
    assert [s["stepId"] for s in run["steps"]] == ["hello", "shout"]


async def test_binary_bodies_are_the_proto_encoding(http: httpx.AsyncClient) -> None:
    await call(http, "WorkflowService/CreateWorkflow", WORKFLOW)
    request = X.StartRunRequest(workflow="workflows/greet", request_id="binary-1")
    request.input.update({"name": "Bo"})
    response = await http.post(
        "/podium.v1.ExecutionService/StartRun",
        content=request.SerializeToString(),
        headers={"content-type": "application/proto"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/proto"
    run = X.StartRunResponse.FromString(response.content).run
    assert run.name.startswith("runs/")
    assert run.workflow == "workflows/greet"


async def test_watch_run_streams_every_event_then_ends(http: httpx.AsyncClient) -> None:
    await call(http, "WorkflowService/CreateWorkflow", WORKFLOW)
    started = await call(
        http, "ExecutionService/StartRun", {"workflow": "workflows/greet", "input": {"name": "C"}}
    )
    name = started.json()["run"]["name"]
    async with http.stream(
        "POST",
        "/podium.v1.ProgressService/WatchRun",
        content=envelope(json.dumps({"run": name}).encode()),
        headers={"content-type": "application/connect+json"},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/connect+json"
        body = await response.aread()
    messages = frames(body)
    *events, (end_flags, end) = messages
    assert end_flags == 2 and json.loads(end) == {}  # end of stream, no error
    received = [e for _, m in events for e in json.loads(m)["events"]]
    sequences = [int(e["sequence"]) for e in received]
    assert sequences == list(range(1, len(sequences) + 1))
    assert received[-1]["type"] == "RUN_EVENT_TYPE_RUN_SUCCEEDED"
    # Resumed after a sequence: exactly the later events.
    resumed = await http.post(
        "/podium.v1.ProgressService/WatchRun",
        content=envelope(json.dumps({"run": name, "afterSequence": 3}).encode()),
        headers={"content-type": "application/connect+json"},
    )
    later = [
        int(e["sequence"])
        for flags, m in frames(resumed.content)
        if flags == 0
        for e in json.loads(m)["events"]
    ]
    assert later == sequences[3:]


async def test_errors_carry_the_same_details_as_grpc(http: httpx.AsyncClient) -> None:
    missing = await call(http, "ExecutionService/GetRun", {"name": "runs/nope"})
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    assert reason(missing) == "RUN_NOT_FOUND"

    bad = await call(
        http, "ExecutionService/StartRun", {"workflow": "workflows/x", "workflowVersion": -1}
    )
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_argument"
    violations = error_details_pb2.BadRequest.FromString(details(bad)["google.rpc.BadRequest"])
    assert [v.field for v in violations.field_violations] == ["workflow_version"]

    malformed = await http.post(
        "/podium.v1.ExecutionService/GetRun", content=b'{"name": ', headers=JSON
    )
    assert malformed.status_code == 400
    assert reason(malformed) == "MALFORMED_REQUEST"
    unknown_field = await call(http, "ExecutionService/GetRun", {"nam": "runs/x"})
    assert reason(unknown_field) == "MALFORMED_REQUEST"

    # A stream's error is its end message, with the same details.
    async with http.stream(
        "POST",
        "/podium.v1.ProgressService/WatchRun",
        content=envelope(b'{"run": "runs/nope"}'),
        headers={"content-type": "application/connect+json"},
    ) as response:
        ((flags, end),) = frames(await response.aread())
    error = json.loads(end)["error"]
    assert flags == 2 and error["code"] == "not_found"
    info = base64.b64decode(error["details"][0]["value"] + "==")
    assert error_details_pb2.ErrorInfo.FromString(info).reason == "RUN_NOT_FOUND"


async def test_grpc_web_http2_and_grpc(server: InProcessServer, http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/podium.v1.ControlService/ListAgents",
        content=envelope(b""),
        headers={"content-type": "application/grpc-web+proto"},
    )
    assert response.status_code == 200
    (flags, payload), (trailer_flags, trailers) = frames(response.content)
    assert flags == 0 and trailer_flags == 0x80
    assert b"grpc-status: 0" in trailers.lower()
    assert b"echo" in payload
    # HTTP/2 with prior knowledge (h2c), as a gRPC or Connect client on a LAN would.
    async with httpx.AsyncClient(http1=False, http2=True, base_url=server.http_url) as h2:
        listed = await h2.post("/podium.v1.ControlService/ListAgents", json={})
        assert listed.http_version == "HTTP/2"
        assert any(agent["name"] == "echo" for agent in listed.json()["agents"])
    # And plain gRPC on the HTTP port, rich status included.
    address = server.http_url.removeprefix("http://")
    async with grpc.aio.insecure_channel(address) as channel:
        stubs = Stubs.on(channel)
        agents = await stubs.control.ListAgents(control_service_pb2.ListAgentsRequest())
        assert "echo" in [agent.name for agent in agents.agents]
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stubs.executions.GetRun(X.GetRunRequest(name="runs/nope"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(missing.value).reason == "RUN_NOT_FOUND"


async def test_cors_allows_the_configured_origin_only(http: httpx.AsyncClient) -> None:
    preflight = await http.options(
        "/podium.v1.ExecutionService/StartRun",
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization,content-type,connect-protocol-version",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    actual = await call(http, "ControlService/ListAgents", {}, origin=ORIGIN)
    assert actual.headers["access-control-allow-origin"] == ORIGIN
    assert "grpc-status-details-bin" in actual.headers["access-control-expose-headers"]

    stranger = await http.options(
        "/podium.v1.ExecutionService/StartRun",
        headers={"origin": "http://evil.example", "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in stranger.headers
    plain = await call(http, "ControlService/ListAgents", {}, origin="http://evil.example")
    assert "access-control-allow-origin" not in plain.headers


async def test_no_cors_headers_without_allowed_origins(tmp_path: Path) -> None:
    async with (
        serving(":memory:", http=HttpSettings("127.0.0.1:0")) as served,
        httpx.AsyncClient(base_url=served.http_url) as http,
    ):
        answer = await call(http, "ControlService/ListAgents", {}, origin=ORIGIN)
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers


async def test_authentication_roles_tenants_and_audit_as_over_grpc(tmp_path: Path) -> None:
    settings = HttpSettings("127.0.0.1:0")
    security = SecurityConfig(auth=True)
    async with (
        serving(str(tmp_path / "podium.db"), security=security, http=settings) as served,
        httpx.AsyncClient(base_url=served.http_url) as http,
    ):
        developer = await new_token(served.server, Role.DEVELOPER, tenant="acme")
        viewer = await new_token(served.server, Role.VIEWER, tenant="acme")
        other = await new_token(served.server, Role.DEVELOPER, tenant="globex")
        admin = await new_token(served.server, Role.ADMIN)

        anonymous = await call(http, "ControlService/ListAgents", {})
        assert anonymous.status_code == 401
        assert reason(anonymous) == "CREDENTIALS_MISSING"
        wrong = await call(
            http, "ControlService/ListAgents", {}, authorization="Bearer pod_nope_nope"
        )
        assert wrong.status_code == 401

        def bearer(token: str) -> dict[str, str]:
            return {"authorization": f"Bearer {token}"}

        denied = await call(http, "WorkflowService/CreateWorkflow", WORKFLOW, **bearer(viewer))
        assert denied.status_code == 403
        assert reason(denied) == "ROLE_NOT_ALLOWED"

        applied = await call(http, "WorkflowService/CreateWorkflow", WORKFLOW, **bearer(developer))
        assert applied.status_code == 200, applied.text
        started = await call(
            http,
            "ExecutionService/StartRun",
            {"workflow": "workflows/greet", "input": {"name": "D"}},
            **bearer(developer),
            **{"x-request-id": "http-start-1"},
        )
        name = started.json()["run"]["name"]
        # Another tenant's run does not exist for globex.
        hidden = await call(http, "ExecutionService/GetRun", {"name": name}, **bearer(other))
        assert hidden.status_code == 404
        assert reason(hidden) == "RUN_NOT_FOUND"
        # An admin acts on a tenant explicitly, a developer may not.
        seen = await call(
            http,
            "ExecutionService/GetRun",
            {"name": name},
            **bearer(admin),
            **{"x-podium-tenant": "acme"},
        )
        assert seen.status_code == 200
        override = await call(
            http,
            "ExecutionService/GetRun",
            {"name": name},
            **bearer(other),
            **{"x-podium-tenant": "acme"},
        )
        assert reason(override) == "TENANT_OVERRIDE_DENIED"

        async with stubs_for(served.address, admin) as stubs:
            records = await stubs.identity.ListAuditRecords(
                identity_service_pb2.ListAuditRecordsRequest(page_size=100),
                metadata=(("x-podium-tenant", "acme"),),
            )
        by_method = {(r.method, r.code) for r in records.records}
        assert ("/podium.v1.ExecutionService/StartRun", "OK") in by_method
        assert ("/podium.v1.WorkflowService/CreateWorkflow", "PERMISSION_DENIED") in by_method
        start = next(r for r in records.records if r.method.endswith("StartRun"))
        assert start.request_id == "http-start-1"
        assert start.tenant == "acme"


async def test_the_rate_limit_is_shared_with_grpc(tmp_path: Path) -> None:
    clock = ManualClock()
    security = SecurityConfig(rate_limit=2)
    async with (
        serving(
            ":memory:", clock=clock, security=security, http=HttpSettings("127.0.0.1:0")
        ) as served,
        httpx.AsyncClient(base_url=served.http_url) as http,
    ):
        await served.stubs.control.ListAgents(control_service_pb2.ListAgentsRequest())
        assert (await call(http, "ControlService/ListAgents", {})).status_code == 200
        limited = await call(http, "ControlService/ListAgents", {})
        assert limited.status_code == 429
        assert reason(limited) == "RATE_LIMITED"
        assert "google.rpc.RetryInfo" in details(limited)
        clock.advance(1)
        assert (await call(http, "ControlService/ListAgents", {})).status_code == 200


async def test_worker_sessions_stay_on_grpc(http: httpx.AsyncClient) -> None:
    response = await call(http, "WorkerService/Connect", {})
    # No Connect endpoint answers (404, or 405 from the console's static files at `/`).
    assert response.status_code in (404, 405)
    assert not response.headers.get("content-type", "").startswith("application/json")


async def test_a_request_past_the_message_limit_is_refused(tmp_path: Path) -> None:
    from podium.core.limits import Limits

    limits = Limits(max_message_bytes=4096)
    async with (
        serving(":memory:", limits=limits, http=HttpSettings("127.0.0.1:0")) as served,
        httpx.AsyncClient(base_url=served.http_url) as http,
    ):
        big = {"workflow": "workflows/x", "input": {"text": "x" * 10_000}}
        refused = await call(http, "ExecutionService/StartRun", big)
        small = await call(http, "ExecutionService/StartRun", {"workflow": "workflows/x"})
    assert refused.status_code == 429
    assert refused.json()["code"] == "resource_exhausted"
    assert small.json()["code"] == "not_found"  # under the limit: the RPC itself answers


async def test_stopping_the_server_ends_an_open_watch_over_http(tmp_path: Path) -> None:
    hold = HoldAgent()
    settings = HttpSettings("127.0.0.1:0")
    async with (
        serving(str(tmp_path / "podium.db"), plugins=plugins_with([hold]), http=settings) as served,
        httpx.AsyncClient(base_url=served.http_url, timeout=30) as http,
    ):
        spec = {"workflowId": "held", "spec": {"steps": [{"id": "h", "agent": "hold"}]}}
        await call(http, "WorkflowService/CreateWorkflow", spec)
        started = await call(http, "ExecutionService/StartRun", {"workflow": "workflows/held"})
        name = started.json()["run"]["name"]
        await eventually(lambda: hold.held == ["h"])
        async with http.stream(
            "POST",
            "/podium.v1.ProgressService/WatchRun",
            content=envelope(json.dumps({"run": name}).encode()),
            headers={"content-type": "application/connect+json"},
        ) as response:
            stream = response.aiter_bytes()
            first = await anext(stream)  # the replayed events: the stream is open
            assert frames(first)[0][0] == 0
            await served.server.stop(0.5)
            rest = b"".join([chunk async for chunk in stream])
    flags, end = frames(rest)[-1]
    assert flags == 2
    assert json.loads(end)["error"]["code"] == "unavailable"


async def test_https_with_the_servers_certificate(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    server_cert = make_certificate(tmp_path, ca, "podium-server", server=True)
    tls = TlsFiles(str(server_cert.cert), str(server_cert.key))
    async with serving(
        ":memory:", security=SecurityConfig(tls=tls), http=HttpSettings("127.0.0.1:0")
    ) as served:
        assert served.server.http is not None
        url = f"https://localhost:{served.server.http.port}"
        trusted = ssl.create_default_context(cafile=str(ca.cert))
        async with httpx.AsyncClient(base_url=url, verify=trusted, http2=True) as https:
            listed = await https.post("/podium.v1.ControlService/ListAgents", json={})
        assert listed.status_code == 200
        assert listed.http_version == "HTTP/2"  # negotiated by ALPN
        async with httpx.AsyncClient(base_url=url, verify=True) as untrusting:
            with pytest.raises(httpx.ConnectError):
                await untrusting.post("/podium.v1.ControlService/ListAgents", json={})
        plain_url = f"http://127.0.0.1:{served.server.http.port}"
        async with httpx.AsyncClient(base_url=plain_url) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.post("/podium.v1.ControlService/ListAgents", json={})
