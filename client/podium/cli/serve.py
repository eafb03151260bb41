"""`podium serve`: runs the control plane from the `podium` distribution, if installed."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from podium.cli import inputs
from podium.cli.context import Context
from podium.cli.parser import ArgumentParser

__all__ = ["register"]

DEFAULT_DB = "./.podium/podium.db"
DEFAULT_GRACE = 10.0
_SERVER_MODULES = frozenset({"podium", "podium.server", "podium.server.main"})


def register(commands: Any) -> None:
    serve: ArgumentParser = commands.add_parser("serve", help="run the Podium server")
    serve.add_argument(
        "--address",
        default=argparse.SUPPRESS,
        help="listen on host:port (default: $PODIUM_ADDRESS or 127.0.0.1:50051)",
    )
    serve.add_argument(
        "--db",
        default=DEFAULT_DB,
        help=f"SQLite file (default: {DEFAULT_DB}), or a PostgreSQL database as a URL:"
        " postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE (the server creates its tables)",
    )
    serve.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, let in-flight calls finish this long (default: 10)",
    )
    serve.add_argument(
        "--retention",
        type=inputs.age,
        default=0.0,
        metavar="AGE",
        help="delete runs that ended longer ago than AGE: 30d, 12h, 90m, 3600s"
        " (default: 0, keep runs forever)",
    )
    serve.add_argument(
        "--policy",
        default=None,
        metavar="FILE",
        help="governance policy (YAML): quotas, budgets, breakers, prices, alerts",
    )
    serve.add_argument(
        "--limit",
        action="append",
        type=_limit,
        default=[],
        metavar="NAME=VALUE",
        help="set one of the server's limits, e.g. max_steps=500 (repeatable; default: the"
        " variable PODIUM_NAME, else the built-in value; names and defaults: docs/limits.md)",
    )
    serve.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="the least severe log lines written (default: info)",
    )
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text lines, or one JSON object a line (default: text)",
    )
    serve.add_argument(
        "--metrics-address",
        default="",
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (default: none)",
    )
    serve.add_argument(
        "--http-address",
        default="",
        metavar="HOST:PORT",
        help="also serve the API over HTTP (Connect JSON/binary, gRPC-Web) and the web console"
        " on http://HOST:PORT/ (default: off)",
    )
    serve.add_argument(
        "--http-cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an origin whose pages may call the HTTP API (e.g. http://localhost:5173);"
        " repeatable, `*` for any (default: none, same origin only)",
    )
    serve.add_argument(
        "--agents",
        choices=("all", "remote-only"),
        default="all",
        help="remote-only: load no agent in-process; every agent runs on workers"
        " (podium worker) (default: all)",
    )
    serve.add_argument(
        "--synchronous",
        choices=("full", "normal"),
        default="full",
        help="full (default): every commit is synced to disk before it is acknowledged, so it"
        " survives a power loss; normal: synced at checkpoints only, so an acknowledged commit"
        " survives the server being killed (kill -9 included) but not a power loss or an OS"
        " crash, for faster commits (SQLite only: PostgreSQL's own settings decide)",
    )
    outbound = serve.add_argument_group(
        "outbound calls", "http steps and completion notifications (README: HTTP steps)"
    )
    outbound.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="NAME=SOURCE",
        help="a named secret for http step headers and notification signatures:"
        " NAME=env:VAR or NAME=file:PATH (repeatable); never stored or shown",
    )
    outbound.add_argument(
        "--secrets-file",
        action="append",
        default=[],
        metavar="FILE",
        help="a file of NAME=SOURCE lines, as --secret (repeatable)",
    )
    outbound.add_argument(
        "--http-allow",
        action="append",
        default=[],
        metavar="NETWORK",
        help="allow outbound calls to this address or network although private, loopback or"
        " link-local (e.g. 127.0.0.1, 10.0.0.0/8; repeatable; default: public addresses only)",
    )
    cluster = serve.add_argument_group(
        "cluster", "several servers on one database file (docs/cluster.md)"
    )
    cluster.add_argument(
        "--cluster",
        action="store_true",
        default=False,
        help="share the database with other `podium serve --cluster` processes: runs are"
        " owned through leases and taken over when their server dies",
    )
    cluster.add_argument(
        "--server-id",
        default="",
        metavar="ID",
        help="this server's name in the cluster (default: host-pid-random)",
    )
    cluster.add_argument(
        "--lease",
        type=float,
        default=7.0,
        metavar="SECONDS",
        help="a server's runs are taken over this long after it stops renewing (default: 7)",
    )
    cluster.add_argument(
        "--cluster-poll",
        type=float,
        default=0.05,
        metavar="SECONDS",
        help="how often other servers' events and commands are read (default: 0.05)",
    )
    security = serve.add_argument_group(
        "security", "without --auth, --jwks or --tls-client-ca only a loopback address is served"
    )
    security.add_argument(
        "--auth",
        action="store_true",
        default=False,
        help="require credentials: API tokens (`podium tokens create`)",
    )
    security.add_argument(
        "--insecure",
        action="store_true",
        default=False,
        help="serve a non-loopback address without authentication (every caller is an admin)",
    )
    security.add_argument("--tls-cert", dest="server_tls_cert", metavar="PEM", help="serve TLS")
    security.add_argument("--tls-key", dest="server_tls_key", metavar="PEM", help="its key")
    security.add_argument(
        "--tls-client-ca",
        dest="server_tls_client_ca",
        metavar="PEM",
        help="mTLS: require client certificates signed by these CAs"
        " (CN: subject, O: tenant, OU: roles)",
    )
    security.add_argument("--jwks", metavar="FILE_OR_URL", help="accept JWTs signed by these keys")
    security.add_argument("--jwt-issuer", default="", help="the JWTs' required `iss`")
    security.add_argument("--jwt-audience", default="", help="the JWTs' required `aud`")
    security.add_argument(
        "--jwt-tenant-claim", default="tenant", help="claim naming the tenant (default: tenant)"
    )
    security.add_argument(
        "--jwt-roles-claim", default="roles", help="claim listing the roles (default: roles)"
    )
    security.add_argument(
        "--jwt-leeway", type=float, default=30.0, metavar="SECONDS", help="clock skew allowed"
    )
    security.add_argument(
        "--rate-limit",
        type=float,
        default=None,
        metavar="RPS",
        help="requests per second per tenant (RESOURCE_EXHAUSTED with RetryInfo past it)",
    )
    serve.set_defaults(handler=serve_command)


def _limit(text: str) -> tuple[str, str]:
    """NAME=VALUE; whether the name and value are allowed is the server's to say."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {text!r}")
    return name.strip(), value.strip()


def serve_command(args: argparse.Namespace, ctx: Context) -> int:
    # Imported by name at run time: podium-client must work without the server distribution,
    # and nothing else in the CLI should pay for importing the server.
    try:
        module = importlib.import_module("podium.server.main")
    except ModuleNotFoundError as error:
        if error.name not in _SERVER_MODULES:
            raise
        print("error: podium serve needs the 'podium' distribution installed", file=sys.stderr)
        return 2
    run_server = module.run_server
    code = run_server(
        address=ctx.address,
        db_path=args.db,
        grace_seconds=args.grace,
        retention_seconds=args.retention or None,
        policy_path=args.policy,
        limits=dict(args.limit),
        log_level=args.log_level,
        log_format=args.log_format,
        metrics_address=args.metrics_address,
        http_address=args.http_address,
        http_cors_origins=tuple(args.http_cors_origin),
        remote_agents_only=args.agents == "remote-only",
        synchronous=args.synchronous.upper(),
        egress_options={
            "secrets": args.secret,
            "secret_files": args.secrets_file,
            "allow": args.http_allow,
        },
        cluster_options=(
            {
                "server_id": args.server_id,
                "lease_seconds": args.lease,
                "poll_seconds": args.cluster_poll,
            }
            if args.cluster
            else None
        ),
        security_options={
            "auth": args.auth,
            "insecure": args.insecure,
            "tls_cert": args.server_tls_cert,
            "tls_key": args.server_tls_key,
            "tls_client_ca": args.server_tls_client_ca,
            "jwks": args.jwks,
            "jwt_issuer": args.jwt_issuer,
            "jwt_audience": args.jwt_audience,
            "jwt_tenant_claim": args.jwt_tenant_claim,
            "jwt_roles_claim": args.jwt_roles_claim,
            "jwt_leeway": args.jwt_leeway,
            "rate_limit": args.rate_limit,
        },
    )
    return int(code or 0)
