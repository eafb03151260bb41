"""Telemetry is off unless configured; OTLP follows the standard OTEL_* variables."""

from __future__ import annotations

import pytest

from podium.telemetry.setup import TelemetrySettings, otlp_tracer_provider, parse_address, start


def test_nothing_configured_means_no_providers() -> None:
    settings = TelemetrySettings.from_env("", {})
    assert settings == TelemetrySettings("", False, False)
    runtime = start(settings)
    assert runtime.tracer_provider is None and runtime.meter_provider is None
    assert runtime.telemetry.tracer is None and runtime.telemetry.metrics is None


def test_an_otlp_endpoint_turns_on_both_signals_unless_one_says_none() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}
    assert TelemetrySettings.from_env("", env) == TelemetrySettings("", True, True)
    only_traces = {**env, "OTEL_METRICS_EXPORTER": "none"}
    assert TelemetrySettings.from_env("", only_traces) == TelemetrySettings("", True, False)
    own = {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://127.0.0.1:4317"}
    assert TelemetrySettings.from_env("", own) == TelemetrySettings("", False, True)
    disabled = {**env, "OTEL_SDK_DISABLED": "true"}
    assert TelemetrySettings.from_env("127.0.0.1:0", disabled) == TelemetrySettings(
        "127.0.0.1:0", False, False
    )


def test_metrics_addresses_are_host_and_port() -> None:
    assert parse_address("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_address("[::1]:0") == ("::1", 0)
    for bad in ("9464", "127.0.0.1:", ":9464", "127.0.0.1:http", "127.0.0.1:70000"):
        with pytest.raises(ValueError, match="not host:port"):
            parse_address(bad)


def test_a_worker_exports_traces_only_when_the_environment_asks() -> None:
    assert otlp_tracer_provider({}) is None
    assert (
        otlp_tracer_provider(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_TRACES_EXPORTER": "none"}
        )
        is None
    )
    provider = otlp_tracer_provider({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317"})
    assert provider is not None
    provider.shutdown()
