"""A remote worker's span of an attempt joins the run's trace: the task
carries the server's attempt span as its W3C traceparent, and the Python
worker's `invoke_agent` span is its child."""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from podium.telemetry.setup import with_providers
from podium.testing import create_workflow, run_to_end, serving, workers_serve
from podium.v1 import run_pb2
from podium.worker import Worker


class Upper:
    """A worker agent: upper-cases `text`; fails its first attempt when asked to."""

    name = "remote-upper"
    description = "Upper-cases its text, on a worker."
    version = "1"

    def __init__(self) -> None:
        self.calls = 0

    async def run(self, ctx: Any) -> Any:
        self.calls += 1
        if ctx.input.get("fail_first") and self.calls == 1:
            raise RuntimeError("first attempt fails")
        return {"text": str(ctx.input["text"]).upper()}


def exporting() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def attempt_of(spans: tuple[ReadableSpan, ...], number: int) -> ReadableSpan:
    (span,) = [
        s
        for s in spans
        if s.name == "invoke_agent remote-upper"
        and (s.attributes or {}).get("podium.attempt") == number
    ]
    return span


async def test_the_workers_attempt_span_is_a_child_of_the_servers() -> None:
    server_provider, server_spans = exporting()
    worker_provider, worker_spans = exporting()
    spec = {
        "steps": [
            {
                "id": "up",
                "agent": "remote-upper",
                "input": {"text": "input.text", "fail_first": "true"},
                "retry": [{"errorEquals": ["podium.All"], "interval": "0.001s", "maxAttempts": 2}],
            }
        ]
    }
    async with serving(telemetry=with_providers(server_provider)) as (server, stubs):
        worker = Worker(f"127.0.0.1:{server.port}", [Upper()], tracer_provider=worker_provider)
        working = asyncio.create_task(worker.run())
        try:
            await workers_serve(stubs, "remote-upper")
            await create_workflow(stubs, "remote", spec)
            run, _ = await run_to_end(stubs, "remote", {"text": "hi"})
        finally:
            worker.stop()
            await working
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED, run.failure
    served = server_spans.get_finished_spans()
    remote = worker_spans.get_finished_spans()
    (workflow,) = [s for s in served if s.name == "invoke_workflow remote"]
    for number in (1, 2):
        on_server, on_worker = attempt_of(served, number), attempt_of(remote, number)
        assert on_server.parent is not None and on_server.parent.span_id == workflow.context.span_id
        assert on_worker.parent is not None
        assert on_worker.parent.span_id == on_server.context.span_id
        assert on_worker.context.trace_id == workflow.context.trace_id
        assert (on_worker.attributes or {})["podium.run.id"] == run.name.removeprefix("runs/")
        assert (on_worker.attributes or {})["podium.step.id"] == "up"
    failed = attempt_of(remote, 1)
    assert failed.status.status_code == StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "RuntimeError"
    assert (attempt_of(remote, 2).attributes or {})["podium.attempt.state"] == "SUCCEEDED"
