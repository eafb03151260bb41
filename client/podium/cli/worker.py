"""`podium worker`: serves the installed agent plugins to a server, out of its
process (runs the worker host of the `podium` distribution, if installed)."""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from typing import Any

from podium.cli.context import Context
from podium.cli.parser import ArgumentParser

__all__ = ["register"]

_QUEUE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,63}")
_HOST_MODULES = frozenset({"podium", "podium.workerhost", "podium.workerhost.main"})


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def _queue(text: str) -> str:
    if not _QUEUE_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"must match [A-Za-z0-9_.-]{{1,63}}, not {text!r}")
    return text


def register(commands: Any) -> None:
    worker: ArgumentParser = commands.add_parser(
        "worker", help="run the installed agent plugins for a server, out of its process"
    )
    worker.add_argument(
        "--address",
        default=argparse.SUPPRESS,
        help="the server, host:port (default: $PODIUM_ADDRESS or 127.0.0.1:50051)",
    )
    worker.add_argument(
        "--queue",
        action="append",
        type=_queue,
        default=None,
        metavar="NAME",
        help="task queue to serve; repeat for several (default: default)",
    )
    worker.add_argument(
        "--concurrency",
        type=_positive,
        default=1,
        metavar="N",
        help="attempts run at once; the server never sends more (default: 1)",
    )
    worker.add_argument(
        "--agent",
        action="append",
        default=None,
        metavar="NAME",
        help="serve only this installed agent; repeat for several (default: all)",
    )
    worker.add_argument(
        "--identity", default="", help="name shown to operators (default: host/pid)"
    )
    worker.set_defaults(handler=worker_command)


def worker_command(args: argparse.Namespace, ctx: Context) -> int:
    try:
        module = importlib.import_module("podium.workerhost.main")
    except ModuleNotFoundError as error:
        if error.name not in _HOST_MODULES:
            raise
        print(
            "error: podium worker runs agent plugins and needs the 'podium' distribution installed",
            file=sys.stderr,
        )
        return 2
    code = module.run_worker(
        ctx.address,
        queues=args.queue or ["default"],
        concurrency=args.concurrency,
        agents=args.agent or [],
        identity=args.identity,
    )
    return int(code or 0)
