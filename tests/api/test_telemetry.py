"""Traces and metrics of real runs through a real server: the span tree and
the GenAI attributes of an ERP-like run (a retried step, a fallback, a tool
call), the caller's trace context, a run resumed after a restart, and the
metrics an in-memory reader collects."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.request
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode, format_span_id, format_trace_id
from prometheus_client.parser import text_string_to_metric_families

from podium.telemetry.logs import JsonFormatter
from podium.telemetry.setup import TelemetryRuntime, TelemetrySettings, start, with_providers
from podium.testing import (
    HANG_TIMEOUT,
    HoldAgent,
    create_workflow,
    echo_step,
    eventually,
    get_run,
    plugins_with,
    run_to_end,
    serving,
)
from podium.testing.values import struct
from podium.v1 import execution_service_pb2, run_pb2

R = run_pb2
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"

ERP = {
    "steps": [
        {
            # sim-large fails: the fallback sim-small takes the call.
            "id": "invoice",
            "agent": "llm",
            "config": {
                "provider": "simulated",
                "model": "sim-large",
                "prompt": "Read the invoice",
                "max_tokens": 50,
                "options": {
                    "fail_with": "server_error",
                    "fail_models": ["sim-large"],
                    "latency_ms": 0,
                },
                "fallbacks": [{"provider": "simulated", "model": "sim-small"}],
            },
        },
        {
            # Fails its first attempt, succeeds on the retry.
            "id": "ledger",
            "agent": "flaky",
            "dependsOn": ["invoice"],
            "config": {"fail_attempts": 1},
            "retry": [{"errorEquals": ["podium.All"], "interval": "0.001s", "maxAttempts": 3}],
        },
        {
            "id": "check",
            "agent": "react",
            "dependsOn": ["invoice"],
            "tools": ["calculator"],
            "config": {
                "provider": "simulated",
                "model": "sim-small",
                "max_turns": 3,
                "prompt": "What is 3 * 4?",
                "options": {
                    "latency_ms": 0,
                    "script": [
                        {
                            "tool_calls": [
                                {"name": "calculator", "arguments": {"expression": "3*4"}}
                            ]
                        },
                        {"text": "12"},
                    ],
                },
            },
        },
    ]
}


def tracing() -> tuple[TelemetryRuntime, InMemorySpanExporter, InMemoryMetricReader]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    runtime = with_providers(tracer_provider, MeterProvider(metric_readers=[reader]))
    return runtime, exporter, reader


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    parent_id = parent.context.span_id
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent_id]


def attr(span: ReadableSpan, key: str) -> Any:
    assert span.attributes is not None
    return span.attributes.get(key)


def metric_points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


async def test_an_erp_run_is_one_trace_with_genai_spans_under_the_callers_span() -> None:
    runtime, exporter, reader = tracing()
    async with serving(telemetry=runtime) as (_, stubs):
        await create_workflow(stubs, "erp", ERP)
        started = await stubs.executions.StartRun(
            execution_service_pb2.StartRunRequest(workflow="workflows/erp", input=struct({})),
            metadata=(("traceparent", TRACEPARENT),),
        )
        run_name = started.run.name
        await eventually(lambda: _ended(stubs, run_name))
        final = await get_run(stubs, run_name)
        assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
        await eventually(lambda: _has(exporter, "invoke_workflow erp"))
    spans = exporter.get_finished_spans()
    run_id = run_name.removeprefix("runs/")

    # The RPC's span (gRPC instrumentation) is the caller's child; the run's span is the RPC's.
    (rpc,) = [s for s in spans if s.name.endswith("ExecutionService/StartRun")]
    assert format_trace_id(rpc.context.trace_id) == CLIENT_TRACE
    assert rpc.parent is not None and format_span_id(rpc.parent.span_id) == CLIENT_SPAN
    (run,) = named(spans, "invoke_workflow erp")
    assert run.parent is not None and run.parent.span_id == rpc.context.span_id
    assert attr(run, "gen_ai.operation.name") == "invoke_workflow"
    assert attr(run, "podium.run.id") == run_id
    assert attr(run, "podium.run.state") == "SUCCEEDED"
    assert attr(run, "podium.run.resumed") is False
    of_run = [s for s in spans if attr(s, "podium.run.id") == run_id]
    assert len(of_run) == 10  # the run, 4 attempts, 4 model calls, 1 tool call
    assert {format_trace_id(s.context.trace_id) for s in of_run} == {CLIENT_TRACE}

    # One invoke_agent span per attempt, children of the run's span.
    attempts = children(spans, run)
    by_step: dict[str, list[ReadableSpan]] = {}
    for span in attempts:
        assert span.name.startswith("invoke_agent ")
        assert attr(span, "gen_ai.operation.name") == "invoke_agent"
        by_step.setdefault(attr(span, "podium.step.id"), []).append(span)
    assert sorted(by_step) == ["check", "invoice", "ledger"]
    ledger = sorted(by_step["ledger"], key=lambda s: attr(s, "podium.attempt"))
    assert [attr(s, "podium.attempt") for s in ledger] == [1, 2]
    assert [attr(s, "podium.attempt.state") for s in ledger] == ["FAILED", "SUCCEEDED"]
    assert ledger[0].status.status_code == StatusCode.ERROR
    assert attr(ledger[0], "error.type") == "FlakyError"
    assert attr(ledger[1], "gen_ai.agent.name") == "flaky"
    retries = [e for e in run.events if e.name == "podium.retry"]
    assert [(e.attributes or {}).get("podium.step.id") for e in retries] == ["ledger"]

    # The fallback: the failed call to sim-large, then the call sim-small answered.
    (invoice,) = by_step["invoice"]
    calls = sorted(children(spans, invoice), key=lambda s: s.start_time or 0)
    assert [c.name for c in calls] == ["chat sim-large", "chat sim-small"]
    failed, answered = calls
    assert failed.status.status_code == StatusCode.ERROR
    assert attr(failed, "error.type") == "server_error"
    assert attr(answered, "gen_ai.provider.name") == "simulated"
    assert attr(answered, "gen_ai.request.model") == "sim-small"
    assert attr(answered, "gen_ai.response.model") == "sim-small"
    assert attr(answered, "gen_ai.usage.input_tokens") > 0
    assert attr(answered, "gen_ai.usage.output_tokens") > 0
    assert attr(answered, "podium.cost") > 0
    assert list(attr(answered, "gen_ai.response.finish_reasons"))
    step = final.steps[0]
    assert step.step_id == "invoice"
    assert attr(invoice, "gen_ai.usage.input_tokens") == step.usage.input_tokens

    # The ReAct step: two model calls and one tool call between them.
    (check,) = by_step["check"]
    under_check = sorted(children(spans, check), key=lambda s: s.start_time or 0)
    assert [s.name for s in under_check] == [
        "chat sim-small",
        "execute_tool calculator",
        "chat sim-small",
    ]
    tool = under_check[1]
    assert attr(tool, "gen_ai.operation.name") == "execute_tool"
    assert attr(tool, "gen_ai.tool.name") == "calculator"
    assert str(attr(tool, "gen_ai.tool.call.id")).startswith("call-")
    assert tool.status.status_code == StatusCode.UNSET

    # Metrics from the same run.
    finished = metric_points(reader, "podium.runs.finished")
    assert [
        (p.attributes["podium.workflow.id"], p.attributes["podium.run.state"], p.value)
        for p in finished
    ] == [("erp", "SUCCEEDED", 1)]
    retried = metric_points(reader, "podium.attempt.retries")
    assert [(p.attributes["podium.step.id"], p.value) for p in retried] == [("ledger", 1)]
    tokens = metric_points(reader, "gen_ai.client.token.usage")
    kinds = {
        (p.attributes["gen_ai.request.model"], p.attributes["gen_ai.token.type"]): p.count
        for p in tokens
    }
    assert kinds == {("sim-small", "input"): 3, ("sim-small", "output"): 3}
    durations = metric_points(reader, "gen_ai.client.operation.duration")
    errors = [p for p in durations if p.attributes.get("error.type") == "server_error"]
    assert [p.count for p in errors] == [1]
    cost = metric_points(reader, "podium.llm.cost")
    assert sum(p.value for p in cost) == float(final.cost.units) + final.cost.nanos / 1e9
    # Without authentication every run is the tenant `default`'s.
    assert {p.attributes["podium.tenant"] for p in cost} == {"default"}


async def test_without_a_traceparent_the_run_starts_a_trace_of_its_own() -> None:
    runtime, exporter, _ = tracing()
    async with serving(telemetry=runtime) as (_, stubs):
        await create_workflow(stubs, "solo", {"steps": [echo_step("a")]})
        await run_to_end(stubs, "solo", {})
        await eventually(lambda: _has(exporter, "invoke_workflow solo"))
    spans = exporter.get_finished_spans()
    (run,) = named(spans, "invoke_workflow solo")
    (rpc,) = [s for s in spans if s.name.endswith("ExecutionService/StartRun")]
    # The RPC is a root (no caller context); the run is its child, in its trace.
    assert rpc.parent is None
    assert run.parent is not None and run.parent.span_id == rpc.context.span_id


async def test_a_resumed_run_joins_the_callers_trace_and_links_to_its_first_span(
    db_path: str,
) -> None:
    hold = HoldAgent()
    spec = {"steps": [{"id": "slow", "agent": "hold"}, echo_step("after", "slow")]}
    first, first_spans, _ = tracing()
    async with serving(db_path, plugins=plugins_with([hold]), telemetry=first) as (server, stubs):
        await create_workflow(stubs, "resumable", spec)
        started = await stubs.executions.StartRun(
            execution_service_pb2.StartRunRequest(workflow="workflows/resumable"),
            metadata=(("traceparent", TRACEPARENT),),
        )
        await eventually(lambda: "slow" in hold.held)
        await server.stop(0.5)
    # The stopped server ended its open spans, marked suspended.
    (before,) = named(first_spans.get_finished_spans(), "invoke_workflow resumable")
    assert attr(before, "podium.run.state") == "SUSPENDED"
    (interrupted,) = named(first_spans.get_finished_spans(), "invoke_agent hold")
    assert attr(interrupted, "podium.attempt.state") == "SUSPENDED"

    hold.release()
    second, second_spans, _ = tracing()
    async with serving(db_path, plugins=plugins_with([hold]), telemetry=second) as (_, stubs):
        await eventually(lambda: _ended(stubs, started.run.name))
        await eventually(lambda: _has(second_spans, "invoke_workflow resumable"))
    (after,) = named(second_spans.get_finished_spans(), "invoke_workflow resumable")
    assert attr(after, "podium.run.resumed") is True
    assert attr(after, "podium.run.state") == "SUCCEEDED"
    # Same trace as the caller's (and the first span's), and a link to the first span.
    assert after.context.trace_id == before.context.trace_id
    assert format_trace_id(after.context.trace_id) == CLIENT_TRACE
    assert [link.context.span_id for link in after.links] == [before.context.span_id]
    attempts = children(second_spans.get_finished_spans(), after)
    assert sorted((attr(s, "podium.step.id"), attr(s, "podium.attempt")) for s in attempts) == [
        ("after", 1),
        ("slow", 2),
    ]


async def _ended(stubs: Any, name: str) -> bool:
    run = await get_run(stubs, name)
    return run.state in (R.RUN_STATE_SUCCEEDED, R.RUN_STATE_FAILED, R.RUN_STATE_PARTIALLY_SUCCEEDED)


async def _has(exporter: InMemorySpanExporter, name: str) -> bool:
    return any(s.name == name for s in exporter.get_finished_spans())


async def test_json_log_lines_of_a_failing_run_carry_its_ids_and_trace() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)  # before the server starts: it adds its trace ids to it
    level = root.level
    root.setLevel(logging.INFO)
    runtime, exporter, _ = tracing()
    try:
        async with serving(telemetry=runtime) as (_, stubs):
            spec = {"steps": [{"id": "boom", "agent": "flaky", "config": {"fail_attempts": 5}}]}
            await create_workflow(stubs, "breaks", spec)
            run, _events = await run_to_end(stubs, "breaks", {})
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    run_id = run.name.removeprefix("runs/")
    lines = [json.loads(text) for text in stream.getvalue().splitlines()]
    about = [line for line in lines if line.get("run_id") == run_id]
    (span,) = named(exporter.get_finished_spans(), "invoke_workflow breaks")
    trace_id = format_trace_id(span.context.trace_id)
    messages = [line["message"] for line in about]
    assert messages == [
        f"run {run_id} of workflow breaks started",
        f"run {run_id} step boom attempt 1 failed: FlakyError: flaky failure on attempt 1",
        f"run {run_id} failed: FlakyError: step 'boom' failed: flaky failure on attempt 1",
    ]
    assert all(line["trace_id"] == trace_id for line in about)
    assert all(line["workflow_id"] == "breaks" for line in about)
    assert (about[1]["step_id"], about[1]["attempt"]) == ("boom", 1)
    assert [line["level"] for line in about] == ["INFO", "INFO", "WARNING"]


async def test_the_prometheus_endpoint_serves_run_and_genai_metrics_over_http() -> None:
    runtime = start(TelemetrySettings(metrics_address="127.0.0.1:0"))
    assert runtime.metrics_port > 0
    async with serving(telemetry=runtime) as (_, stubs):
        await create_workflow(stubs, "erp", ERP)
        run, _events = await run_to_end(stubs, "erp", {})
        assert run.state == R.RUN_STATE_SUCCEEDED
        url = f"http://127.0.0.1:{runtime.metrics_port}/metrics"
        body = await asyncio.to_thread(_scrape, url)
    samples = {
        (family.name, sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float:
        found = [
            v
            for (_, sample, pairs), v in samples.items()
            if sample == name and labels.items() <= dict(pairs).items()
        ]
        assert len(found) == 1, (name, labels, found)
        return found[0]

    assert (
        value("podium_runs_finished_total", podium_workflow_id="erp", podium_run_state="SUCCEEDED")
        == 1
    )
    assert value("podium_attempt_retries_total", podium_step_id="ledger") == 1
    assert value("podium_runs_active") == 0
    assert (
        value(
            "gen_ai_client_token_usage_count",
            gen_ai_request_model="sim-small",
            gen_ai_token_type="input",
        )
        == 3
    )
    assert value("gen_ai_client_operation_duration_seconds_count", error_type="server_error") == 1
    assert value("podium_store_commits_total") > 0
    # After the server stopped, the endpoint is gone.
    with pytest.raises(OSError):
        await asyncio.to_thread(_scrape, url)


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=HANG_TIMEOUT) as response:
        assert response.status == 200
        return str(response.read().decode())
