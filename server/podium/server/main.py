"""`podium serve`: run the server until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from podium.governance.policy import Policy, PolicyError, load_policy
from podium.server import loop
from podium.server.app import start_server

log = logging.getLogger("podium.server")


def run_server(
    address: str,
    db_path: str,
    grace_seconds: float = 10.0,
    retention_seconds: float | None = None,
    policy_path: str | None = None,
    remote_agents_only: bool = False,
) -> int:
    """Serves until a signal arrives; returns the process exit code.

    `retention_seconds`: delete runs that ended longer ago (None or 0: keep them)."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    policy = Policy()
    if policy_path:
        try:
            policy = load_policy(policy_path)
        except PolicyError as error:
            print(f"error: policy {policy_path}: {error}", file=sys.stderr)
            return 2
    try:
        return loop.run(
            _serve(address, db_path, grace_seconds, retention_seconds, policy, remote_agents_only)
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
    remote_agents_only: bool = False,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        server = await start_server(
            address,
            db_path,
            retention_seconds=retention_seconds,
            policy=policy,
            remote_agents_only=remote_agents_only,
        )
    except PolicyError as error:
        # Stored runtime changes conflict with the file (e.g. a budget limit
        # below its spend): say which, and stop.
        print(f"error: policy: {error}", file=sys.stderr)
        return 2
    log.info("podium serving on %s (port %d), database %s", address, server.port, db_path)
    await stop.wait()
    log.info("shutting down (grace %.1fs)", grace_seconds)
    await server.stop(grace_seconds)
    log.info("stopped")
    return 0
