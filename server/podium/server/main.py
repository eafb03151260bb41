"""`podium serve`: run the server until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from podium.governance.policy import Policy, PolicyError, load_policy
from podium.server import loop
from podium.server.app import start_server
from podium.telemetry import setup
from podium.telemetry.logs import configure_logging

log = logging.getLogger("podium.server")


def run_server(
    address: str,
    db_path: str,
    grace_seconds: float = 10.0,
    retention_seconds: float | None = None,
    policy_path: str | None = None,
    log_level: str = "info",
    log_format: str = "text",
    metrics_address: str = "",
    remote_agents_only: bool = False,
) -> int:
    """Serves until a signal arrives; returns the process exit code.

    `retention_seconds`: delete runs that ended longer ago (None or 0: keep them).
    `metrics_address`: host:port of a Prometheus /metrics endpoint ("": none);
    traces and metrics go to OTLP when the standard OTEL_* variables say so."""
    configure_logging(log_level, log_format, sys.stderr)
    settings = setup.TelemetrySettings.from_env(metrics_address)
    if metrics_address:
        try:
            setup.parse_address(metrics_address)
        except ValueError as error:
            print(f"error: --metrics-address: {error}", file=sys.stderr)
            return 2
    policy = Policy()
    if policy_path:
        try:
            policy = load_policy(policy_path)
        except PolicyError as error:
            print(f"error: policy {policy_path}: {error}", file=sys.stderr)
            return 2
    try:
        return loop.run(
            _serve(
                address,
                db_path,
                grace_seconds,
                retention_seconds,
                policy,
                settings,
                remote_agents_only,
            )
        )
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


async def _serve(
    address: str,
    db_path: str,
    grace_seconds: float,
    retention_seconds: float | None,
    policy: Policy,
    settings: setup.TelemetrySettings,
    remote_agents_only: bool = False,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    telemetry = setup.start(settings)
    try:
        server = await start_server(
            address,
            db_path,
            retention_seconds=retention_seconds,
            policy=policy,
            telemetry=telemetry,
            remote_agents_only=remote_agents_only,
        )
    except PolicyError as error:
        # Stored runtime changes conflict with the file (e.g. a budget limit
        # below its spend): say which, and stop.
        await telemetry.close()
        print(f"error: policy: {error}", file=sys.stderr)
        return 2
    except BaseException:
        await telemetry.close()
        raise
    log.info("podium serving on %s (port %d), database %s", address, server.port, db_path)
    await stop.wait()
    log.info("shutting down (grace %.1fs)", grace_seconds)
    await server.stop(grace_seconds)
    log.info("stopped")
    return 0
