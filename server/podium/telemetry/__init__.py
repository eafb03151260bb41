"""Observability: OpenTelemetry traces and metrics of runs (following the
GenAI semantic conventions), structured logs, and their set-up.

It depends on podium.core only: the engine reports through its RunObserver
seam (podium.engine.observer), which `Telemetry` implements; the composition
root (podium.server.app) builds it from the command line and the standard
OTEL_* environment variables. Off, nothing but the lifecycle log lines runs.
"""
