"""Governance alerts through a real server on a ManualClock: a budget crossing its
thresholds, a breaker opening and closing again, a call waiting too long for a quota,
each POSTed signed to a local endpoint (which checks the HMAC), retried with backoff
after a 500, counted by the OpenTelemetry reader; a dead endpoint never stalls a run."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

from podium.core.clock import ManualClock
from podium.egress.settings import EgressSettings
from podium.governance.policy import Policy, PolicyError
from podium.telemetry.setup import TelemetryRuntime, with_providers
from podium.testing import (
    create_workflow,
    eventually,
    run_to_end,
    serving,
    start_run,
    step_reaches,
)
from podium.testing.errors import error_info, field_violations
from podium.testing.http_endpoint import HttpEndpoint, Reply, Request, http_endpoint
from podium.v1 import control_service_pb2, run_pb2

C, R = control_service_pb2, run_pb2
KEY = "alert-signing-key-5d0e"


def egress(monkeypatch: Any) -> EgressSettings:
    monkeypatch.setenv("PODIUM_TEST_ALERT_KEY", KEY)
    return EgressSettings.parse(secrets=["alerts=env:PODIUM_TEST_ALERT_KEY"], allow=["127.0.0.1"])


def metrics() -> tuple[TelemetryRuntime, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    return with_providers(None, MeterProvider(metric_readers=[reader])), reader


def counted(reader: InMemoryMetricReader, name: str) -> dict[tuple[Any, ...], float]:
    """A counter's values by its attributes (sorted (key, value) pairs)."""
    data = reader.get_metrics_data()
    found: dict[tuple[Any, ...], float] = {}
    if data is None:
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        assert isinstance(point, NumberDataPoint)
                        found[tuple(sorted((point.attributes or {}).items()))] = point.value
    return found


def verify(request: Request) -> None:
    timestamp = request.headers["Podium-Timestamp"]
    expected = hmac.new(KEY.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256)
    assert hmac.compare_digest(request.headers["Podium-Signature"], "v1=" + expected.hexdigest())


def alerts_to(url: str, **section: Any) -> dict[str, Any]:
    return {"url": url, "secret": "alerts", **section}


def kinds(endpoint: HttpEndpoint) -> list[str]:
    return [request.json()["kind"] for request in endpoint.requests]


def llm_step(step_id: str = "ask", **config: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "agent": "llm",
        "config": {
            "prompt": "Summarise the ticket in one line.",
            "max_tokens": 20,
            "options": {"latency_ms": 0},
            **config,
        },
    }


async def cost_of_one_call() -> float:
    async with serving() as (_, stubs):
        await create_workflow(stubs, "probe", {"steps": [llm_step()]})
        run, _ = await run_to_end(stubs, "probe")
    return run.cost.units + run.cost.nanos / 1e9


async def test_a_budget_crossing_its_thresholds_is_posted_signed_once_each(
    monkeypatch: Any,
) -> None:
    cost = await cost_of_one_call()
    telemetry, reader = metrics()
    with http_endpoint() as endpoint:
        rules = Policy.model_validate(
            {
                "budgets": [{"name": "cap", "scope": "server", "limit": f"{cost * 10:.9f}"}],
                "alerts": alerts_to(endpoint.url("/alerts"), budget_thresholds=[0.05, 0.15]),
            }
        )
        async with serving(
            clock=ManualClock(), policy=rules, egress=egress(monkeypatch), telemetry=telemetry
        ) as (_, stubs):
            await create_workflow(stubs, "ask", {"steps": [llm_step()]})
            for _ in range(3):  # 10 %, 20 %, 30 % of the limit
                run, _ = await run_to_end(stubs, "ask")
                assert run.state == R.RUN_STATE_SUCCEEDED
            await eventually(lambda: len(endpoint.requests) >= 2, what="two alerts")
            await eventually(
                lambda: sum(counted(reader, "podium.alerts.delivered").values()) == 2,
                what="two deliveries counted",
            )
            raised = counted(reader, "podium.alerts")
    assert kinds(endpoint) == ["budget_threshold", "budget_threshold"]
    for request in endpoint.requests:
        verify(request)
        assert request.path == "/alerts"
    first, second = (request.json() for request in endpoint.requests)
    assert first["subject"] == second["subject"] == "budget:cap"
    assert [first["details"]["threshold"], second["details"]["threshold"]] == [0.05, 0.15]
    assert float(first["details"]["spent"]) == pytest.approx(cost, rel=1e-6)
    assert "past 5%" in first["message"] and "past 15%" in second["message"]
    assert first["id"] != second["id"] and first["time"].endswith("Z")
    assert KEY not in str(endpoint.requests)
    assert raised == {
        (("podium.alert.kind", "budget_threshold"), ("podium.alert.subject", "budget:cap")): 2
    }


async def test_a_breaker_opening_and_closing_again_alerts(monkeypatch: Any) -> None:
    clock = ManualClock()
    telemetry, reader = metrics()
    with http_endpoint() as endpoint:
        rules = Policy.model_validate(
            {
                "breakers": {
                    "overrides": {
                        "model:simulated/sim-large": {"failure_threshold": 1, "cooldown": 30}
                    }
                },
                "alerts": alerts_to(endpoint.url(), kinds=["breaker_opened", "breaker_closed"]),
            }
        )
        failing = llm_step(
            model="sim-large", options={"latency_ms": 0, "fail_with": "server_error"}
        )
        async with serving(
            clock=clock, policy=rules, egress=egress(monkeypatch), telemetry=telemetry
        ) as (_, stubs):
            await create_workflow(stubs, "failing", {"steps": [failing]})
            await create_workflow(stubs, "healthy", {"steps": [llm_step(model="sim-large")]})
            run, _ = await run_to_end(stubs, "failing")
            assert run.state == R.RUN_STATE_FAILED
            await eventually(lambda: len(endpoint.requests) >= 1, what="the opening")
            clock.advance(30)  # the cooldown: the next call is the probe
            run, _ = await run_to_end(stubs, "healthy")
            assert run.state == R.RUN_STATE_SUCCEEDED
            await eventually(lambda: len(endpoint.requests) >= 2, what="the closing")
            raised = counted(reader, "podium.alerts")
    assert kinds(endpoint) == ["breaker_opened", "breaker_closed"]
    opened, closed = (request.json() for request in endpoint.requests)
    for request in endpoint.requests:
        verify(request)
    assert opened["subject"] == closed["subject"] == "breaker:model:simulated/sim-large"
    assert opened["details"]["state"] == "OPEN" and "consecutive" in opened["details"]["cause"]
    assert closed["details"]["state"] == "CLOSED" and "probe" in closed["details"]["cause"]
    subject = ("podium.alert.subject", "breaker:model:simulated/sim-large")
    assert raised == {
        (("podium.alert.kind", "breaker_opened"), subject): 1,
        (("podium.alert.kind", "breaker_closed"), subject): 1,
    }


async def test_a_sustained_quota_wait_alerts_after_wait_after_seconds(monkeypatch: Any) -> None:
    clock = ManualClock()
    with http_endpoint() as endpoint:
        rules = Policy.model_validate(
            {
                "quotas": [
                    {
                        "name": "one-a-minute",
                        "scope": "provider:simulated",
                        "dimension": "requests",
                        "limit": 1,
                        "burst": 1,
                    }
                ],
                "alerts": alerts_to(endpoint.url(), kinds=["quota_wait"], wait_after=10),
            }
        )
        async with serving(clock=clock, policy=rules, egress=egress(monkeypatch)) as (_, stubs):
            await create_workflow(stubs, "ask", {"steps": [llm_step()]})
            first, _ = await run_to_end(stubs, "ask")
            assert first.state == R.RUN_STATE_SUCCEEDED
            waiting = await start_run(stubs, "ask")
            await step_reaches(stubs, waiting.name, "ask", R.STEP_STATE_WAITING)
            clock.advance(9)
            await asyncio.sleep(0.2)
            assert endpoint.requests == []  # not sustained yet
            clock.advance(1)
            await eventually(lambda: len(endpoint.requests) == 1, what="the wait's alert")
            clock.advance(50)  # the bucket refills: the call goes, and alerts nothing more
            await step_reaches(stubs, waiting.name, "ask", R.STEP_STATE_SUCCEEDED)
    (request,) = endpoint.requests
    verify(request)
    alert = request.json()
    assert alert["kind"] == "quota_wait" and alert["subject"] == "quota:one-a-minute"
    assert alert["details"]["run"] == waiting.name
    assert alert["details"]["step"] == "ask" and alert["details"]["waited_seconds"] == 10


async def test_a_failing_endpoint_gets_the_alert_again_with_backoff(monkeypatch: Any) -> None:
    clock = ManualClock()
    telemetry, reader = metrics()
    cost = await cost_of_one_call()
    with http_endpoint() as endpoint:
        endpoint.script(Reply(500, b"down"))
        rules = Policy.model_validate(
            {
                "budgets": [{"name": "cap", "scope": "server", "limit": f"{cost * 2:.9f}"}],
                "alerts": alerts_to(endpoint.url(), budget_thresholds=[0.25]),
            }
        )
        async with serving(
            clock=clock, policy=rules, egress=egress(monkeypatch), telemetry=telemetry
        ) as (_, stubs):
            await create_workflow(stubs, "ask", {"steps": [llm_step()]})
            await run_to_end(stubs, "ask")
            await eventually(lambda: len(endpoint.requests) == 1, what="the first attempt")
            await eventually(
                lambda: counted(reader, "podium.alerts.delivery_failures") != {},
                what="the failure counted",
            )
            await asyncio.sleep(0.2)
            assert len(endpoint.requests) == 1  # not again before its backoff
            clock.advance(1)  # webhooks.backoff(1)
            await eventually(lambda: len(endpoint.requests) == 2, what="the retry")
            await eventually(
                lambda: counted(reader, "podium.alerts.delivered") != {}, what="delivered"
            )
            failures = counted(reader, "podium.alerts.delivery_failures")
    first, second = endpoint.requests
    verify(first)
    verify(second)
    assert first.json() == second.json()  # the same alert (its id) again
    subject = (("podium.alert.kind", "budget_threshold"), ("podium.alert.subject", "budget:cap"))
    assert failures == {(*subject[:1], subject[1], ("podium.final", False)): 1}


@contextmanager
def silent_endpoint() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/alerts"
    finally:
        listener.close()


async def test_a_dead_endpoint_never_stalls_runs_and_the_queue_stays_bounded(
    monkeypatch: Any,
) -> None:
    telemetry, reader = metrics()
    cost = await cost_of_one_call()
    with silent_endpoint() as url:
        # Every call crosses a threshold of its own budget: one alert per run, none answered.
        budgets = [
            {"name": f"b{n}", "scope": "workflow:ask", "limit": f"{cost * 100:.9f}"}
            for n in range(6)
        ]
        rules = Policy.model_validate(
            {
                "budgets": budgets,
                "alerts": alerts_to(url, budget_thresholds=[0.005], queue_size=2),
            }
        )
        async with serving(policy=rules, egress=egress(monkeypatch), telemetry=telemetry) as (
            server,
            stubs,
        ):
            await create_workflow(stubs, "ask", {"steps": [llm_step()]})
            for _ in range(3):
                run, _ = await run_to_end(stubs, "ask")
                assert run.state == R.RUN_STATE_SUCCEEDED
            alerts = server.engine.services.governance.alerts
            assert alerts.queued <= 2
            # The runs ended while the first delivery still waits for an answer (it gives
            # up after webhooks.DELIVERY_TIMEOUT): the gate never waited for it.
            assert counted(reader, "podium.alerts.delivery_failures") == {}
            raised = sum(counted(reader, "podium.alerts").values())
            dropped = sum(counted(reader, "podium.alerts.dropped").values())
    # The first run's call crossed 6 budgets' thresholds: 6 alerts, 4 dropped by the bound.
    assert raised == 6
    assert dropped == 4


async def test_alerts_to_a_secret_the_server_lacks_stop_it_at_start(monkeypatch: Any) -> None:
    rules = Policy.model_validate(
        {"alerts": {"url": "http://127.0.0.1:9/alerts", "secret": "missing"}}
    )
    with pytest.raises(PolicyError) as refused:
        async with serving(policy=rules, egress=egress(monkeypatch)):
            pass
    assert refused.value.field == "alerts.secret"
    assert "'missing' is not configured" in refused.value.reason


# -- runtime changes: GetAlerts / UpdateAlerts ------------------------------------------


def update(**fields: Any) -> C.UpdateAlertsRequest:
    return C.UpdateAlertsRequest(alerts=C.Alerts(**fields))


@pytest.mark.parametrize(
    ("alerts", "field"),
    [
        ({"url": "http://127.0.0.1:9/alerts"}, "alerts.secret"),
        ({"url": "http://127.0.0.1:9/alerts", "secret": "not-held"}, "alerts.secret"),
        ({"url": "gopher://127.0.0.1/", "secret": "alerts"}, "alerts.url"),
        ({"kinds": [C.ALERT_KIND_QUOTA_WAIT, C.ALERT_KIND_UNSPECIFIED]}, "alerts.kinds[1]"),
        ({"budget_thresholds": [0.5, float("nan")]}, "alerts.budget_thresholds"),
        ({"queue_size": -3}, "alerts.queue_size"),
    ],
)
async def test_bad_alerts_settings_are_invalid_argument_naming_the_field(
    monkeypatch: Any, alerts: dict[str, Any], field: str
) -> None:
    async with serving(egress=egress(monkeypatch)) as (_, stubs):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stubs.control.UpdateAlerts(update(**alerts))
        after = await stubs.control.GetAlerts(C.GetAlertsRequest())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(caught.value)] == [field]
    assert error_info(caught.value).reason == "INVALID_POLICY"
    assert not after.HasField("alerts")  # nothing changed


async def test_alerts_changed_at_runtime_apply_at_once_and_survive_a_restart(
    monkeypatch: Any, db_path: str
) -> None:
    settings = egress(monkeypatch)
    rules = Policy.model_validate(
        {
            "breakers": {"overrides": {"model:simulated/sim-large": {"failure_threshold": 1}}},
            "alerts": {"kinds": ["budget_threshold"]},  # the file's: metrics only
        }
    )
    failing = llm_step(model="sim-large", options={"latency_ms": 0, "fail_with": "server_error"})
    with http_endpoint() as endpoint:
        async with serving(db_path, policy=rules, egress=settings) as (_, stubs):
            before = await stubs.control.GetAlerts(C.GetAlertsRequest())
            assert list(before.alerts.kinds) == [C.ALERT_KIND_BUDGET_THRESHOLD]
            assert before.alerts.url == ""
            changed = await stubs.control.UpdateAlerts(
                update(
                    url=endpoint.url("/ops"), secret="alerts", kinds=[C.ALERT_KIND_BREAKER_OPENED]
                )
            )
            assert changed.alerts.wait_after.seconds == 60  # the defaults, filled in
            assert changed.alerts.min_interval.seconds == 300
            await create_workflow(stubs, "failing", {"steps": [failing]})
            await run_to_end(stubs, "failing")
            await eventually(lambda: len(endpoint.requests) == 1, what="the opening")
        async with serving(db_path, policy=rules, egress=settings) as (_, stubs):
            kept = await stubs.control.GetAlerts(C.GetAlertsRequest())
            await stubs.control.UpdateAlerts(C.UpdateAlertsRequest())  # off
            off = await stubs.control.GetAlerts(C.GetAlertsRequest())
        async with serving(db_path, policy=rules, egress=settings) as (_, stubs):
            still_off = await stubs.control.GetAlerts(C.GetAlertsRequest())
    assert endpoint.requests[0].path == "/ops"
    assert endpoint.requests[0].json()["kind"] == "breaker_opened"
    verify(endpoint.requests[0])
    assert kept.alerts.url == endpoint.url("/ops")
    assert list(kept.alerts.kinds) == [C.ALERT_KIND_BREAKER_OPENED]
    assert not off.HasField("alerts") and not still_off.HasField("alerts")
