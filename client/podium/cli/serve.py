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
    serve.add_argument("--db", default=DEFAULT_DB, help=f"SQLite file (default: {DEFAULT_DB})")
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
        help="governance policy (YAML): quotas, budgets, breakers, prices",
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
        "--agents",
        choices=("all", "remote-only"),
        default="all",
        help="remote-only: load no agent in-process; every agent runs on workers"
        " (podium worker) (default: all)",
    )
    serve.set_defaults(handler=serve_command)


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
        log_level=args.log_level,
        log_format=args.log_format,
        metrics_address=args.metrics_address,
        remote_agents_only=args.agents == "remote-only",
    )
    return int(code or 0)
