"""Wires the server: store, plugins, engine, servicers, health and reflection."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from podium.core import limits as server_limits
from podium.core.clock import Clock, SystemClock
from podium.core.limits import Limits
from podium.egress import webhooks
from podium.egress.client import EgressClient
from podium.egress.destinations import DestinationPolicy
from podium.egress.settings import EgressSettings
from podium.engine.cluster import ClusterSettings
from podium.engine.engine import DEFAULT_MAX_RUNNING_STEPS, Engine
from podium.engine.notifier import Notifier
from podium.engine.retention import Pruner, default_interval
from podium.engine.schedules import Scheduler, engine_scheduler
from podium.governance.alerts import check_secret
from podium.governance.policy import Policy
from podium.governance.prices import contribute_provider_prices
from podium.governance.service import Governance
from podium.identity.authenticator import Authenticator
from podium.identity.rates import TenantRateLimiter
from podium.identity.token_catalog import TokenCatalog
from podium.plugins.builtin.http import HttpAgent
from podium.plugins.manager import BUILTIN_PLUGIN, PluginReport, load_plugins
from podium.server import reflection
from podium.server.audit_before import BeforeReader
from podium.server.control_service import ControlService
from podium.server.event_encoding import EventEncoder
from podium.server.execution_service import ExecutionService
from podium.server.http.serving import HttpServer, HttpSettings
from podium.server.identity_interceptor import IdentityInterceptor
from podium.server.identity_service import IdentityService
from podium.server.load_shedding import LoadShedder
from podium.server.malformed import MalformedRequests
from podium.server.progress_service import ProgressService, add_progress_service
from podium.server.schedule_service import ScheduleService
from podium.server.security import (
    SecurityConfig,
    ServeRefused,
    check_address,
    server_credentials,
)
from podium.server.store_watch import StoreWatch
from podium.server.watchdog import DEFAULT_THRESHOLD, LoopWatchdog
from podium.server.worker_service import WorkerService
from podium.server.workflow_service import WorkflowService
from podium.store.postgres.url import is_postgres_url, redact
from podium.store.sqlite.cluster import SqliteCluster
from podium.store.sqlite.governance_store import SqliteGovernanceStore
from podium.store.sqlite.identity_store import SqliteIdentityStore
from podium.store.sqlite.ownership import DatabaseLock
from podium.store.sqlite.relay import SqliteRelay
from podium.store.sqlite.schedule_store import SqliteScheduleStore
from podium.store.sqlite.store import MEMORY, SqliteStore
from podium.telemetry import setup as telemetry_setup
from podium.telemetry.logs import TraceIds
from podium.telemetry.metrics import Gauges
from podium.v1 import (
    control_service_pb2,
    control_service_pb2_grpc,
    execution_service_pb2,
    execution_service_pb2_grpc,
    identity_service_pb2,
    identity_service_pb2_grpc,
    progress_service_pb2,
    schedule_service_pb2,
    schedule_service_pb2_grpc,
    worker_service_pb2,
    worker_service_pb2_grpc,
    workflow_service_pb2,
    workflow_service_pb2_grpc,
)

if TYPE_CHECKING:
    # PyJWT and cryptography: imported by a server with JWT settings only (_jwt_verifier).
    from podium.identity.jwt_bearer import JwtVerifier

    # asyncpg and the PostgreSQL backend: imported by a server on PostgreSQL only.
    from podium.store.postgres.cluster import PostgresCluster
    from podium.store.postgres.governance_store import PostgresGovernanceStore
    from podium.store.postgres.identity_store import PostgresIdentityStore
    from podium.store.postgres.relay import PostgresRelay
    from podium.store.postgres.schedule_store import PostgresScheduleStore
    from podium.store.postgres.store import PostgresStore

log = logging.getLogger("podium.server")

# The backend `--db` picks: a SQLite file (or ":memory:"), or a PostgreSQL URL.
Store: TypeAlias = "SqliteStore | PostgresStore"


def server_options(limits: Limits) -> tuple[tuple[str, int], ...]:
    return (
        # SO_REUSEPORT (grpc's default) would let a second server bind the
        # same port and share its connections: a port is owned by one server.
        ("grpc.so_reuseport", 0),
        # Oversized requests are refused by gRPC before they are parsed.
        ("grpc.max_receive_message_length", limits.max_message_bytes),
    )


SERVICE_NAMES = (
    workflow_service_pb2.DESCRIPTOR.services_by_name["WorkflowService"].full_name,
    execution_service_pb2.DESCRIPTOR.services_by_name["ExecutionService"].full_name,
    progress_service_pb2.DESCRIPTOR.services_by_name["ProgressService"].full_name,
    control_service_pb2.DESCRIPTOR.services_by_name["ControlService"].full_name,
    worker_service_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name,
    identity_service_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name,
    schedule_service_pb2.DESCRIPTOR.services_by_name["ScheduleService"].full_name,
)


@dataclass
class PodiumServer:
    """A running server; `stop()` shuts it down gracefully."""

    server: grpc.aio.Server
    engine: Engine
    store: Store
    health: health.aio.HealthServicer
    plugins: PluginReport
    port: int
    pruner: Pruner | None = None
    watch: StoreWatch | None = None
    # Held while serving: one server per database file.
    lock: DatabaseLock | None = None
    watchdog: LoopWatchdog | None = None
    # Watch responses, encoded once for every subscriber.
    event_encoder: EventEncoder | None = None
    # Sheds unary calls past the limit of calls in flight.
    shedder: LoadShedder | None = None
    # The limits this server put in force (given back when it stops).
    limits: Limits | None = None
    # API tokens: where a test or the bootstrap creates the first admin token.
    tokens: TokenCatalog | None = None
    telemetry: telemetry_setup.TelemetryRuntime | None = None
    log_ids: TraceIds | None = None
    # The HTTP API and console (`--http-address`), when served.
    http: HttpServer | None = None
    outbound: EgressClient | None = None
    scheduler: Scheduler | None = None

    async def stop(self, grace: float = 10.0) -> None:
        """Stops accepting calls, lets unary calls finish within `grace`,
        ends watch streams with UNAVAILABLE (clients reconnect elsewhere or
        after restart), stops runs resumably and commits what is pending."""
        await self.health.enter_graceful_shutdown()
        if self.watchdog is not None:
            self.watchdog.stop()
        if self.watch is not None:
            await self.watch.stop()
        self.engine.hub.close_all()
        # Worker sessions end now, not after `grace`: workers reconnect to the
        # next server, and the attempts they run stop resumably with the engine.
        self.engine.workers.shutdown()
        if self.http is not None:
            await self.http.stop(grace)
        await self.server.stop(grace)
        if self.pruner is not None:
            # Before the engine and the store go: a pass in flight would write to a closed store.
            await self.pruner.stop()
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.engine.notifier is not None:
            await self.engine.notifier.stop()
        await self.engine.services.governance.alerts.stop()
        await self.engine.shutdown()
        if self.outbound is not None:
            await self.outbound.close()
        await self.store.close()
        if self.telemetry is not None:
            # After the engine: spans of runs it stopped end as suspended.
            await self.telemetry.close()
        if self.log_ids is not None:
            for handler in logging.getLogger().handlers:
                handler.removeFilter(self.log_ids)
        if self.lock is not None:
            self.lock.release()
        if self.limits is not None:
            self.limits = None  # stopping twice gives them back once
            server_limits.release()


async def start_server(
    address: str = "127.0.0.1:50051",
    db_path: str = ":memory:",
    *,
    plugins: PluginReport | None = None,
    version: str = "",
    retention_seconds: float | None = None,
    clock: Clock | None = None,
    max_running_steps: int = DEFAULT_MAX_RUNNING_STEPS,
    policy: Policy | None = None,
    max_output_bytes: int | None = None,
    watchdog_threshold: float | None = DEFAULT_THRESHOLD,
    limits: Limits | None = None,
    telemetry: telemetry_setup.TelemetryRuntime | None = None,
    remote_agents_only: bool = False,
    synchronous: str = "FULL",
    security: SecurityConfig | None = None,
    http: HttpSettings | None = None,
    egress: EgressSettings | None = None,
    cluster: ClusterSettings | None = None,
    server_id: str = "",
) -> PodiumServer:
    """Opens the store, loads plugins, starts serving and resumes unfinished runs.

    With `retention_seconds` (> 0), runs that ended longer ago than that are
    deleted in the background; None or 0 keeps runs forever.
    `limits` (podium.core.limits): None reads them from the environment
    (PODIUM_MAX_STEPS, ...; LimitError for a bad one); they are in force in
    this process while the server serves. `max_output_bytes`, if given,
    replaces that one limit.
    With `watchdog_threshold` (seconds), a blocked event loop is logged with
    the agent that blocked it; None watches nothing.
    `telemetry`: traces and metrics (podium.telemetry.setup); None: log lines only.
    The server closes it when it stops.
    With `remote_agents_only`, no plugin's agent is loaded in-process (when
    `plugins` is None): every agent runs on workers (WorkerService).
    `synchronous`: FULL (a commit is on disk when acknowledged, power loss
    included) or NORMAL (it survives the process being killed, not a power
    loss); see podium.store.sqlite.store.
    `security`: authentication, TLS and request rates; None serves without
    credentials, which only a loopback address allows (ServeRefused, before
    anything is opened or bound, otherwise).
    `http`: also serve the same services over HTTP (Connect, gRPC-Web) and the web console
    on `http.address` (the same loopback rule holds there).
    `egress`: secrets and allowed private networks of outbound calls (the `http`
    agent, completion notifications); None: no secrets, public addresses only.
    `cluster`: serve in cluster mode, with other servers on the same database
    file (docs/cluster.md): no exclusive lock, runs owned through leases.
    `server_id` names this server among them ("": a new random id).
    """
    security = security or SecurityConfig()
    check_address(address, security)
    if http is not None:
        check_address(http.address, security)
    jwt = _jwt_verifier(security)
    if retention_seconds is not None and retention_seconds < 0:
        raise ValueError("retention_seconds must not be negative")
    if limits is None:
        limits = Limits.from_settings(os.environ)
    if max_output_bytes is not None:
        limits = limits.replace(max_output_bytes=max_output_bytes)
    server_limits.hold(limits)
    try:
        return await _open_and_serve(
            address,
            db_path,
            limits,
            plugins=plugins,
            version=version,
            retention_seconds=retention_seconds,
            clock=clock,
            max_running_steps=max_running_steps,
            policy=policy,
            watchdog_threshold=watchdog_threshold,
            remote_agents_only=remote_agents_only,
            synchronous=synchronous,
            security=security,
            jwt=jwt,
            telemetry=telemetry or telemetry_setup.off(),
            http=http,
            egress=egress or EgressSettings(),
            cluster=cluster,
            server_id=server_id,
        )
    except BaseException:
        server_limits.release()
        raise


async def _open_and_serve(
    address: str,
    db_path: str,
    limits: Limits,
    *,
    plugins: PluginReport | None,
    version: str,
    retention_seconds: float | None,
    clock: Clock | None,
    max_running_steps: int,
    policy: Policy | None,
    watchdog_threshold: float | None,
    remote_agents_only: bool,
    synchronous: str,
    security: SecurityConfig,
    jwt: JwtVerifier | None,
    telemetry: telemetry_setup.TelemetryRuntime,
    http: HttpSettings | None,
    egress: EgressSettings,
    cluster: ClusterSettings | None,
    server_id: str,
) -> PodiumServer:
    started = time.time()
    store: Store
    if cluster is not None:
        server_id = server_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    else:
        server_id = ""
    if is_postgres_url(db_path):
        from podium.store.postgres.store import PostgresStore

        # One server per database (an advisory lock), unless in cluster mode:
        # then leases and fencing share it.
        store = PostgresStore(db_path, server_id=server_id)
        lock = None
    else:
        # Checks its arguments first (cluster mode needs a file).
        store = SqliteStore(db_path, synchronous=synchronous, server_id=server_id)
        # One server per file, unless in cluster mode: then leases and fencing share it.
        lock = None if db_path == MEMORY or cluster is not None else DatabaseLock(db_path)
    if lock is not None:
        Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    try:
        await store.open()
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    try:
        return await _serve_store(
            store,
            address,
            started,
            plugins=plugins,
            version=version,
            retention_seconds=retention_seconds,
            clock=clock,
            max_running_steps=max_running_steps,
            policy=policy,
            lock=lock,
            limits=limits,
            watchdog_threshold=watchdog_threshold,
            telemetry=telemetry,
            remote_agents_only=remote_agents_only,
            security=security,
            jwt=jwt,
            http=http,
            egress=egress,
            cluster=cluster,
        )
    except BaseException:
        # Whatever failed, nothing may keep running: the store's threads would
        # keep the process alive after the error was reported.
        await store.close()
        if lock is not None:
            lock.release()
        raise


async def _serve_store(
    store: Store,
    address: str,
    started: float,
    *,
    plugins: PluginReport | None,
    version: str,
    retention_seconds: float | None,
    clock: Clock | None,
    max_running_steps: int,
    policy: Policy | None,
    lock: DatabaseLock | None,
    limits: Limits,
    watchdog_threshold: float | None,
    telemetry: telemetry_setup.TelemetryRuntime,
    remote_agents_only: bool,
    security: SecurityConfig,
    jwt: JwtVerifier | None,
    http: HttpSettings | None,
    egress: EgressSettings,
    cluster: ClusterSettings | None,
) -> PodiumServer:
    check_secret(policy.alerts if policy is not None else None, egress.secrets.names)
    report = plugins if plugins is not None else load_plugins(agents=not remote_agents_only)
    outbound = EgressClient(DestinationPolicy(egress.allow), egress.secrets)
    # Builtin, but configured by the server (its secrets and allow-list), so
    # registered here rather than through the plugin hook; a report reused from
    # an earlier server (tests restart servers) gets this server's client.
    registered = report.registry.agent(HttpAgent.name)
    if isinstance(registered, HttpAgent):
        registered.bind(outbound)
    elif registered is None and not remote_agents_only:
        report.registry.add_agent(HttpAgent(outbound), BUILTIN_PLUGIN)
    for failed in report.failed:
        log.warning("plugin %s failed to load: %s", failed.name, failed.error)
    governance = Governance(
        policy or Policy(),
        clock or SystemClock(),
        _governance_store(store),
        shared=cluster is not None,
    )
    governance.secret_names = frozenset(egress.secrets.names)
    await governance.load()
    _configure_providers(report, policy or Policy())
    contribute_provider_prices(governance.prices, (e.provider for e in report.registry.providers))
    # Breakers exist before any call: those of every provider, its models and priced models.
    models = {(e.provider.name, m) for e in report.registry.providers for m in e.provider.models}
    governance.breakers.configure_known(
        {f"provider:{e.provider.name}" for e in report.registry.providers}
        | {
            name
            for provider, model in models | set(governance.prices.entries())
            for name in (f"provider:{provider}", f"model:{provider}/{model}")
        }
    )
    engine = Engine(
        store,
        report.registry,
        governance,
        clock=governance.clock,
        max_running_steps=max_running_steps,
        observer=telemetry.telemetry,
        cluster=_cluster_store(store) if cluster is not None else None,
        cluster_settings=cluster,
        relay=_relay_store(store) if cluster is not None else None,
    )

    def deliver(url: str, secret: str, payload: Any, now: float) -> Awaitable[webhooks.Delivery]:
        return webhooks.deliver(outbound, url, secret, payload, now)

    engine.notifier = Notifier(store, engine.services.recorder, engine.clock, deliver)

    # The shedder first: a call past the limit costs nothing more. Then
    # the RPC's span (child of the caller's traceparent), when tracing, so it
    # covers the rest. Then identity: a caller is admitted before its request
    # is even looked at.
    shedder = LoadShedder(limits.max_calls_in_flight)
    identity_store = _identity_store(store)
    tokens = TokenCatalog(identity_store, governance.clock)
    authenticator = Authenticator(
        tokens,
        enabled=security.authenticates,
        jwt=jwt,
        certificates=security.client_certificates,
    )
    limiter = (
        TenantRateLimiter(security.rate_limit, governance.clock) if security.rate_limit else None
    )
    interceptors: list[grpc.aio.ServerInterceptor] = [shedder]
    log_ids = None
    if telemetry.tracer_provider is not None:
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        interceptors.append(
            aio_server_interceptor(  # type: ignore[no-untyped-call]
                tracer_provider=telemetry.tracer_provider
            )
        )
        log_ids = TraceIds(telemetry.telemetry.trace_ids)
        for handler in logging.getLogger().handlers:
            handler.addFilter(log_ids)
    admission: list[grpc.aio.ServerInterceptor] = [
        IdentityInterceptor(
            authenticator,
            identity_store,
            governance.clock,
            limiter,
            BeforeReader(engine, governance),
        ),
        MalformedRequests(),
    ]
    interceptors += admission
    server = grpc.aio.server(interceptors=interceptors, options=server_options(limits))
    progress_service = ProgressService(engine)
    servicers = _Servicers(
        WorkflowService(engine.workflows, engine.estimate),
        ExecutionService(engine),
        progress_service,
        ControlService(engine, governance, report, version or _version(), started, store),
        WorkerService(engine.workers, engine.relay),
        IdentityService(tokens, identity_store, store.commit),
        ScheduleService(scheduler := engine_scheduler(engine, _schedule_store(store))),
    )
    servicers.add_to(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable((*SERVICE_NAMES, health.SERVICE_NAME), server)
    port = _listen(server, address, security)
    http_server = None
    if http is not None:
        # The HTTP stack (hypercorn, starlette, connectrpc) loads only when asked for.
        from podium.server.http.app import build_application
        from podium.server.http.grpc_bridge import HandlerCollector, intercepted
        from podium.server.http.serving import start_http

        # The same handlers behind the same admission (the shedder, identity, malformed
        # requests; RPC spans are gRPC's instrumentation's), bound before anything starts.
        collector = HandlerCollector()
        servicers.add_to(collector)
        handlers = await intercepted(collector.handlers, [shedder, *admission])
        application = build_application(
            handlers, cors_origins=http.cors_origins, read_max_bytes=limits.max_message_bytes
        )
        http_server = await start_http(application, http, security.tls)
    await server.start()
    if not security.authenticates:
        log.warning(
            "authentication is off: every caller is an admin%s",
            " (--insecure)" if security.insecure else "; serving a loopback address only",
        )
    engine.start_recovery()
    engine.notifier.start()
    # Alerts go out with the notifications' signed deliveries, counted by telemetry.
    metrics = telemetry.telemetry.metrics
    governance.alerts.observer = metrics.alerts if metrics is not None else None
    governance.alerts.start(deliver)
    scheduler.start()
    pruner = None
    if retention_seconds:
        pruner = Pruner(
            store,
            engine.active,
            retention_seconds,
            default_interval(retention_seconds),
            clock=engine.clock,
        )
        pruner.start()
        log.info("deleting runs that ended over %.0fs ago", retention_seconds)
    for name in (*SERVICE_NAMES, ""):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    watch = StoreWatch(store, health_servicer, (*SERVICE_NAMES, ""))
    watch.start()
    telemetry.observe(
        Gauges(
            active_runs=lambda: len(engine.active),
            running_steps=lambda: engine.running_steps,
            subscribers=lambda: engine.hub.subscriber_count,
            workers=lambda: engine.workers.session_count,
            budget_utilization=governance.budget_utilization,
            breaker_states=governance.breaker_states,
            store_commits=store.commit_stats,
        )
    )
    watchdog = None
    if watchdog_threshold is not None:
        watchdog = LoopWatchdog(asyncio.get_running_loop(), watchdog_threshold)
        watchdog.start()
    return PodiumServer(
        server,
        engine,
        store,
        health_servicer,
        report,
        port,
        pruner,
        watch,
        lock,
        watchdog,
        progress_service.encoder,
        shedder,
        limits,
        tokens,
        telemetry,
        log_ids,
        http_server,
        outbound,
        scheduler,
    )


@dataclass(frozen=True)
class _Servicers:
    workflows: WorkflowService
    execution: ExecutionService
    progress: ProgressService
    control: ControlService
    workers: WorkerService
    identity: IdentityService
    schedules: ScheduleService

    def add_to(self, server: Any) -> None:
        """Registers every servicer on a grpc.aio.Server, or on the HTTP side's collector
        of the very same handlers."""
        workflow_service_pb2_grpc.add_WorkflowServiceServicer_to_server(self.workflows, server)
        execution_service_pb2_grpc.add_ExecutionServiceServicer_to_server(self.execution, server)
        add_progress_service(self.progress, server)
        control_service_pb2_grpc.add_ControlServiceServicer_to_server(self.control, server)
        worker_service_pb2_grpc.add_WorkerServiceServicer_to_server(self.workers, server)
        identity_service_pb2_grpc.add_IdentityServiceServicer_to_server(self.identity, server)
        schedule_service_pb2_grpc.add_ScheduleServiceServicer_to_server(self.schedules, server)


def _governance_store(store: Store) -> SqliteGovernanceStore | PostgresGovernanceStore:
    if not isinstance(store, SqliteStore):
        from podium.store.postgres.governance_store import PostgresGovernanceStore

        return PostgresGovernanceStore(store)
    return SqliteGovernanceStore(store)


def _schedule_store(store: Store) -> SqliteScheduleStore | PostgresScheduleStore:
    if not isinstance(store, SqliteStore):
        from podium.store.postgres.schedule_store import PostgresScheduleStore

        return PostgresScheduleStore(store)
    return SqliteScheduleStore(store)


def _identity_store(store: Store) -> SqliteIdentityStore | PostgresIdentityStore:
    if not isinstance(store, SqliteStore):
        from podium.store.postgres.identity_store import PostgresIdentityStore

        return PostgresIdentityStore(store)
    return SqliteIdentityStore(store)


def describe_database(db_path: str, synchronous: str) -> str:
    """`--db` as logs may show it: a PostgreSQL URL without its password, a
    SQLite file with its synchronous mode."""
    if is_postgres_url(db_path):
        return f"{redact(db_path)} (PostgreSQL)"
    return f"{db_path} (synchronous={synchronous})"


def _jwt_verifier(security: SecurityConfig) -> JwtVerifier | None:
    if security.jwt is None:
        return None
    from podium.identity.jwt_bearer import JwtVerifier

    try:
        return JwtVerifier(security.jwt)
    except ValueError as error:
        raise ServeRefused(str(error)) from None


def _listen(server: grpc.aio.Server, address: str, security: SecurityConfig) -> int:
    """Binds `address`; OSError when it is taken (grpc returns 0 for some
    failures and raises RuntimeError "Failed to bind" for others)."""
    try:
        if security.tls is not None:
            port = server.add_secure_port(address, server_credentials(security.tls))
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as error:
        raise OSError(f"cannot listen on {address}: address in use or unavailable") from error
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return port


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("podium")
    except PackageNotFoundError:
        return "0+unknown"


def _configure_providers(plugins: PluginReport, policy: Policy) -> None:
    """Hands each provider its settings from the policy file; a provider
    whose `configure` raises is logged and keeps its defaults."""
    for name, settings in policy.providers.items():
        provider = plugins.registry.provider(name)
        if provider is None:
            log.warning("policy has settings for provider %r, which is not installed", name)
            continue
        configure = getattr(provider, "configure", None)
        if not callable(configure):
            log.warning("provider %r takes no settings; ignoring them", name)
            continue
        try:
            configure(settings)
        # Even SystemExit or KeyboardInterrupt: a plugin never keeps the server from serving.
        except BaseException:
            log.exception("provider %r rejected its settings", name)


def _relay_store(store: Store) -> SqliteRelay | PostgresRelay:
    """The task relay's port of the store (cluster mode)."""
    if not isinstance(store, SqliteStore):
        from podium.store.postgres.relay import PostgresRelay

        return PostgresRelay(store)
    assert isinstance(store, SqliteStore)
    return SqliteRelay(store)


def _cluster_store(store: Store) -> SqliteCluster | PostgresCluster:
    """The cluster port of the store, opened with this server's id."""
    if not isinstance(store, SqliteStore):
        from podium.store.postgres.cluster import PostgresCluster

        return PostgresCluster(store)
    assert isinstance(store, SqliteStore)
    return SqliteCluster(store)
