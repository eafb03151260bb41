"""Turns settings into running telemetry: the SDK's tracer and meter
providers, their exporters (OTLP from the standard OTEL_* variables, a
Prometheus `/metrics` endpoint from `--metrics-address`), and shutdown.

Off unless configured: without an OTLP endpoint or a metrics address there
is no provider at all, and the engine's observer only writes log lines. The
SDK is imported only then: a server without telemetry does not load it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from podium.telemetry.loop_lag import LoopLag
from podium.telemetry.metrics import Gauges, RunMetrics
from podium.telemetry.observer import Telemetry

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

log = logging.getLogger("podium.telemetry")


@dataclass(frozen=True)
class TelemetrySettings:
    # host:port of the Prometheus endpoint ("" : none).
    metrics_address: str = ""
    otlp_traces: bool = False
    otlp_metrics: bool = False

    @classmethod
    def from_env(
        cls, metrics_address: str = "", environ: Mapping[str, str] | None = None
    ) -> TelemetrySettings:
        """OTLP per signal when an endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT
        or the signal's own) and OTEL_{TRACES,METRICS}_EXPORTER is not "none";
        nothing at all with OTEL_SDK_DISABLED=true."""
        env = os.environ if environ is None else environ
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return cls(metrics_address)
        common = bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip())

        def wanted(signal: str) -> bool:
            exporter = env.get(f"OTEL_{signal}_EXPORTER", "").strip().lower()
            if exporter == "none":
                return False
            own = bool(env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", "").strip())
            return common or own or exporter == "otlp"

        return cls(metrics_address, wanted("TRACES"), wanted("METRICS"))


@dataclass
class TelemetryRuntime:
    """What runs: the observer the engine reports to, the providers behind
    it, the Prometheus endpoint. `close()` flushes and stops them."""

    telemetry: Telemetry
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    metrics_server: WSGIServer | None = None
    metrics_port: int = 0
    loop_lag: LoopLag | None = None
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def tracing(self) -> bool:
        return self.tracer_provider is not None

    def observe(self, gauges: Gauges) -> None:
        """Registers the server's gauges, and samples the event loop's lag."""
        metrics = self.telemetry.metrics
        if metrics is None:
            return
        self.loop_lag = LoopLag()
        self.loop_lag.start()
        gauges.event_loop_lag = self.loop_lag.take
        metrics.observe(gauges)

    async def close(self) -> None:
        self.telemetry.stop()
        if self.loop_lag is not None:
            await self.loop_lag.stop()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def off() -> TelemetryRuntime:
    """No spans, no metrics: lifecycle log lines only."""
    return TelemetryRuntime(Telemetry())


def with_providers(
    tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None
) -> TelemetryRuntime:
    """Telemetry on given providers (tests hand in-memory exporters and readers)."""
    metrics = None if meter_provider is None else RunMetrics(meter_provider)
    return TelemetryRuntime(
        Telemetry(tracer_provider, metrics),
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )


def start(settings: TelemetrySettings) -> TelemetryRuntime:
    """Builds what `settings` ask for; OSError when the metrics address
    cannot be bound, ValueError when it is malformed."""
    if not (settings.metrics_address or settings.otlp_traces or settings.otlp_metrics):
        return off()
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    resource = _resource()
    tracer_provider = None
    if settings.otlp_traces:
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(_otlp_spans())
    readers: list[MetricReader] = []
    server = None
    port = 0
    threads: list[threading.Thread] = []
    if settings.metrics_address:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, start_http_server

        host, port = parse_address(settings.metrics_address)
        registry = CollectorRegistry()
        readers.append(PrometheusMetricReader(registry=registry))
        server, thread = start_http_server(port, host, registry=registry)
        port = server.server_port
        threads.append(thread)
        log.info("metrics on http://%s:%d/metrics", _bracketed(host), port)
    if settings.otlp_metrics:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    meter_provider = MeterProvider(resource=resource, metric_readers=readers) if readers else None
    runtime = with_providers(tracer_provider, meter_provider)
    runtime.metrics_server = server
    runtime.metrics_port = port
    runtime._threads = threads
    return runtime


def otlp_tracer_provider(environ: Mapping[str, str] | None = None) -> TracerProvider | None:
    """A tracer provider exporting over OTLP when the OTEL_* variables ask
    for traces (as `podium serve` reads them), else None: for `podium worker`."""
    if not TelemetrySettings.from_env("", environ).otlp_traces:
        return None
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(resource=_resource())
    provider.add_span_processor(_otlp_spans())
    return provider


def parse_address(address: str) -> tuple[str, int]:
    """host:port or [v6]:port; port 0 picks a free one."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"metrics address {address!r} is not host:port")
    return host.strip("[]"), int(port_text)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _resource() -> Resource:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    return Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or "podium"})


def _otlp_spans() -> SpanProcessor:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(OTLPSpanExporter())
