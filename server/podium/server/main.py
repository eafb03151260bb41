"""`podium serve`: run the server until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import signal
import sys
from collections.abc import Mapping
from typing import Any

from podium.core.limits import LimitError, Limits
from podium.egress.secrets import SecretError
from podium.egress.settings import EgressSettings
from podium.engine.cluster import DEFAULT_LEASE_SECONDS, DEFAULT_POLL_SECONDS, ClusterSettings
from podium.governance.policy import Policy, PolicyError, load_policy
from podium.identity.jwt_settings import JwtSettings
from podium.server import loop
from podium.server.app import describe_database, start_server
from podium.server.http.serving import HttpSettings
from podium.server.security import SecurityConfig, TlsFiles, check_address
from podium.telemetry import setup
from podium.telemetry.logs import configure_logging

log = logging.getLogger("podium.server")

MAX_LEASE_SECONDS = 3600.0
# The event loop's thread shares the interpreter with the store's writer and
# reader threads, the worker threads that translate large definitions and
# encode large events, and gRPC's poller. Whenever one of them holds the
# interpreter lock, a hand-off to the loop waits up to the switch interval
# (5 ms by default), and one call crosses several hand-offs. At 1 ms, health
# checks during a 10,000-step ValidateWorkflow answered in p99 56-64 ms
# instead of 89-98 (bench W10, three interleaved pairs), with no change on
# W1-W4, W6 or W9 beyond this machine's noise.
SWITCH_INTERVAL_S = 0.001
SERVER_ID = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def run_server(
    address: str,
    db_path: str,
    grace_seconds: float = 10.0,
    retention_seconds: float | None = None,
    policy_path: str | None = None,
    limits: Mapping[str, str] | None = None,
    remote_agents_only: bool = False,
    synchronous: str = "FULL",
    security_options: dict[str, Any] | None = None,
    log_level: str = "info",
    log_format: str = "text",
    metrics_address: str = "",
    http_address: str = "",
    http_cors_origins: tuple[str, ...] = (),
    egress_options: Mapping[str, list[str]] | None = None,
    cluster_options: dict[str, Any] | None = None,
) -> int:
    """Serves until a signal arrives; returns the process exit code.

    `retention_seconds`: delete runs that ended longer ago (None or 0: keep them).
    `limits`: limit name -> value (`--limit NAME=VALUE`), over PODIUM_NAME
    variables, over the defaults; a bad one is an error before anything starts.
    `synchronous`: FULL or NORMAL, what an acknowledged commit survives (see SqliteStore).
    `metrics_address`: host:port of a Prometheus /metrics endpoint ("": none);
    traces and metrics go to OTLP when the standard OTEL_* variables say so.
    `http_address`: host:port of the HTTP API and web console ("": none), whose pages may be
    called from `http_cors_origins`. `cluster_options` (server_id, lease_seconds,
    poll_seconds): cluster mode (docs/cluster.md); None serves alone, holding the database
    file's lock."""
    configure_logging(log_level, log_format, sys.stderr)
    telemetry_settings = setup.TelemetrySettings.from_env(metrics_address)
    if metrics_address:
        try:
            setup.parse_address(metrics_address)
        except ValueError as error:
            print(f"error: --metrics-address: {error}", file=sys.stderr)
            return 2
    try:
        settings = Limits.from_settings(os.environ, limits)
        security = security_config(security_options or {})
        check_address(address, security)
        http = None
        if http_address:
            http = HttpSettings(http_address, http_cors_origins)
            check_address(http_address, security)
        elif http_cors_origins:
            raise ValueError("--http-cors-origin needs --http-address")
        egress = EgressSettings.parse(**(egress_options or {}))
        cluster, server_id = cluster_config(cluster_options)
        if cluster is not None and db_path == ":memory:":
            raise ValueError("--cluster needs a database file, not :memory:")
    except (LimitError, SecretError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    policy = Policy()
    if policy_path:
        try:
            policy = load_policy(policy_path)
        except PolicyError as error:
            print(f"error: policy {policy_path}: {error}", file=sys.stderr)
            return 2
    sys.setswitchinterval(SWITCH_INTERVAL_S)
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
                synchronous,
                security,
                telemetry_settings,
                http,
                egress,
                cluster,
                server_id,
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
    limits: Limits,
    remote_agents_only: bool,
    synchronous: str,
    security: SecurityConfig,
    telemetry_settings: setup.TelemetrySettings,
    http: HttpSettings | None,
    egress: EgressSettings,
    cluster: ClusterSettings | None,
    server_id: str,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    telemetry = setup.start(telemetry_settings)
    try:
        server = await start_server(
            address,
            db_path,
            retention_seconds=retention_seconds,
            policy=policy,
            limits=limits,
            remote_agents_only=remote_agents_only,
            synchronous=synchronous,
            security=security,
            telemetry=telemetry,
            http=http,
            egress=egress,
            cluster=cluster,
            server_id=server_id,
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
    # What start-up allocated (modules, protobuf descriptors, plugins, CEL)
    # lives as long as the process: out of the collector's sight, a full
    # collection no longer walks its ~200,000 objects, a pause of hundreds of
    # milliseconds that held every RPC whenever a large request or run
    # triggered one.
    gc.freeze()
    log.info(
        "podium serving on %s (port %d), database %s",
        address,
        server.port,
        describe_database(db_path, synchronous),
    )
    changed = limits.changed()
    if changed:
        log.info("limits: %s", ", ".join(f"{name}={value}" for name, value in changed.items()))
    await stop.wait()
    log.info("shutting down (grace %.1fs)", grace_seconds)
    await server.stop(grace_seconds)
    log.info("stopped")
    return 0


def cluster_config(options: dict[str, Any] | None) -> tuple[ClusterSettings | None, str]:
    """Cluster settings from `podium serve`'s options (ValueError naming a bad one)."""
    if options is None:
        return None, ""
    lease = float(options.get("lease_seconds", DEFAULT_LEASE_SECONDS))
    poll = float(options.get("poll_seconds", DEFAULT_POLL_SECONDS))
    if not 0 < lease <= MAX_LEASE_SECONDS:
        raise ValueError(f"--lease must be above 0 and at most {MAX_LEASE_SECONDS:g} seconds")
    if not 0 < poll <= lease / 4:
        raise ValueError("--cluster-poll must be above 0 and at most a quarter of --lease")
    server_id = str(options.get("server_id", ""))
    if server_id and not SERVER_ID.fullmatch(server_id):
        raise ValueError("--server-id must match [A-Za-z0-9_.-]{1,100}")
    return ClusterSettings(lease_seconds=lease, poll_seconds=poll), server_id


def security_config(options: dict[str, Any]) -> SecurityConfig:
    """`podium serve`'s security flags as a SecurityConfig; ValueError for
    flags that do not go together."""
    tls = None
    cert, key, client_ca = (
        options.get("tls_cert"),
        options.get("tls_key"),
        options.get("tls_client_ca"),
    )
    if (cert is None) != (key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if client_ca is not None and cert is None:
        raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
    if cert is not None and key is not None:
        tls = TlsFiles(cert, key, client_ca)
    jwt = None
    if options.get("jwks"):
        if not options.get("jwt_issuer") or not options.get("jwt_audience"):
            raise ValueError("--jwks needs --jwt-issuer and --jwt-audience")
        jwt = JwtSettings(
            jwks=options["jwks"],
            issuer=options["jwt_issuer"],
            audience=options["jwt_audience"],
            leeway_seconds=float(options.get("jwt_leeway", 30.0)),
            tenant_claim=options.get("jwt_tenant_claim") or "tenant",
            roles_claim=options.get("jwt_roles_claim") or "roles",
        )
    rate = options.get("rate_limit")
    if rate is not None and rate <= 0:
        raise ValueError("--rate-limit must be positive")
    return SecurityConfig(
        auth=bool(options.get("auth")),
        jwt=jwt,
        tls=tls,
        insecure=bool(options.get("insecure")),
        rate_limit=rate,
    )
