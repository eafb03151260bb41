"""Telemetry as the engine's observer, driven directly with records: waits
inside an attempt become span attributes and wait metrics; a suspended
server ends its open spans; with nothing configured it keeps no state."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from podium.core.model import AttemptRecord, RunRecord, StepRecord
from podium.core.states import AttemptState, RunState
from podium.telemetry.metrics import RunMetrics
from podium.telemetry.observer import Telemetry
from podium.telemetry.propagation import span_context_from


def records() -> tuple[RunRecord, StepRecord, AttemptRecord]:
    run = RunRecord("r1", "w", 1, RunState.RUNNING, {}, 0.0)
    step = StepRecord("s", "llm", 0)
    attempt = AttemptRecord(1, AttemptState.RUNNING, 0.0)
    return run, step, attempt


def test_quota_and_breaker_waits_are_attributes_of_the_attempt_and_wait_metrics() -> None:
    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry(tracer_provider, RunMetrics(MeterProvider(metric_readers=[reader])))
    run, step, attempt = records()
    context = telemetry.run_started(run, resumed=False)
    assert span_context_from(context) is not None
    telemetry.attempt_started(run, step, attempt, 0.25)
    telemetry.waiting(run, step, attempt, "quota:requests")
    telemetry.resumed(run, step, attempt, "quota:requests")
    telemetry.waiting(run, step, attempt, "breaker:provider:simulated")
    telemetry.resumed(run, step, attempt, "breaker:provider:simulated")
    attempt.state = AttemptState.SUCCEEDED
    telemetry.attempt_ended(run, step, attempt)
    (span,) = exporter.get_finished_spans()
    attributes = span.attributes or {}
    assert attributes["podium.wait.slot"] == 0.25
    assert float(str(attributes["podium.wait.quota"])) > 0
    assert float(str(attributes["podium.wait.breaker"])) > 0
    data = reader.get_metrics_data()
    assert data is not None
    waits = [
        str((point.attributes or {})["podium.wait.kind"])
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "podium.wait.duration"
        for point in metric.data.data_points
    ]
    assert sorted(waits) == ["breaker", "quota", "slot"]


def test_stopping_ends_open_spans_as_suspended() -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry(tracer_provider)
    run, step, attempt = records()
    telemetry.run_started(run, resumed=False)
    telemetry.attempt_started(run, step, attempt, 0.0)
    telemetry.llm_call_started(run, step, attempt, "simulated", "sim-small")
    telemetry.stop()
    names = sorted(s.name for s in exporter.get_finished_spans())
    assert names == ["chat sim-small", "invoke_agent llm", "invoke_workflow w"]
    states = {
        s.name: (s.attributes or {}).get(
            "podium.run.state", (s.attributes or {}).get("podium.attempt.state")
        )
        for s in exporter.get_finished_spans()
    }
    assert states["invoke_workflow w"] == "SUSPENDED"
    assert states["invoke_agent llm"] == "SUSPENDED"


def test_without_tracing_or_metrics_attempts_leave_no_state() -> None:
    telemetry = Telemetry()
    run, step, attempt = records()
    assert telemetry.run_started(run, resumed=False) == ""
    telemetry.attempt_started(run, step, attempt, 0.0)
    telemetry.llm_call_started(run, step, attempt, "simulated", "sim-small")
    assert telemetry.trace_ids("r1") is None
    assert not telemetry._attempts  # nothing kept per attempt when off
    run.state = RunState.SUCCEEDED
    telemetry.run_finished(run)
    assert not telemetry._runs
