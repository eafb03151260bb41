"""A Podium server in a process of its own for one workload: `podium serve`,
started and stopped through podium.testing.process, on a fresh SQLite file
(or a given one, to restart on it). Its own process, so that its peak memory
is its own and not the driver's.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench.measure import peak_rss_mb_of
from podium.client._credentials import aio_interceptors
from podium.identity.principal import Role
from podium.server.bootstrap import create_token_offline
from podium.testing import ServerProcess, start_server_process_async
from podium.v1 import event_pb2

FINAL_EVENTS = (
    event_pb2.RUN_EVENT_TYPE_RUN_SUCCEEDED,
    event_pb2.RUN_EVENT_TYPE_RUN_FAILED,
    event_pb2.RUN_EVENT_TYPE_RUN_CANCELLED,
)
# What in-flight calls get on SIGTERM: the benchmark has none left by then.
STOP_GRACE_S = 1.0
# `podium serve --synchronous` of every server the benchmark starts (bench/run.py
# --synchronous): "full", the default, or "normal".
SERVE_OPTIONS: dict[str, str] = {"synchronous": "full"}


class BenchError(RuntimeError):
    """A run did not do what the benchmark asked: its figures would be meaningless."""


# BENCH_AUTH=1: the servers of the DAG and fan-out workloads (W1-W4, W6) require API tokens
# (`--auth`) and the driver sends one.
AUTH_ENV = "BENCH_AUTH"


def auth_requested() -> bool:
    return os.environ.get(AUTH_ENV) == "1"


@dataclass
class BenchServer:
    process: ServerProcess
    token: str | None = None

    def channel(self) -> grpc.aio.Channel:
        """A channel to the server, carrying the admin token when it has one."""
        return grpc.aio.insecure_channel(self.address, interceptors=aio_interceptors(self.token))

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def address(self) -> str:
        return self.process.address

    @property
    def spawned_at(self) -> float:
        """time.time() when the server's process was spawned."""
        return self.process.spawned_at

    async def stop(self) -> float:
        """Stops the server gracefully; returns its peak RSS in MB (read just
        before, the shutdown itself allocates next to nothing)."""
        peak_rss_mb = peak_rss_mb_of(self.process.pid)
        code = await self.process.stop_async()
        if code != 0:
            raise BenchError(f"server exited with status {code}:\n{self.process.log_tail()}")
        return peak_rss_mb


@asynccontextmanager
async def server_process(
    db_path: Path | str | None = None, *, auth: bool = False
) -> AsyncIterator[BenchServer]:
    """A fresh server with its own SQLite file (WAL), so that neither its peak
    RSS nor its database carries over from another workload; or, given
    `db_path` (a file or a postgresql:// URL), a fresh process on that database."""
    with tempfile.TemporaryDirectory(prefix="podium-bench-") as tmp:
        db = db_path or Path(tmp) / "podium.db"
        token: str | None = None
        args: tuple[str, ...] = ("--synchronous", SERVE_OPTIONS["synchronous"])
        if auth:
            new = await create_token_offline(str(db), "bench", "default", frozenset({Role.ADMIN}))
            token, args = new.secret, (*args, "--auth")
        process = await start_server_process_async(db, log_dir=tmp, grace=STOP_GRACE_S, args=args)
        try:
            yield BenchServer(process, token)
        finally:
            process.kill()  # a no-op after a graceful stop
