"""`podium serve` in a process of its own, for what only a real process
shows: startup, signals, a crash (SIGKILL) and a restart on the same
database, the CLI against a server, benchmarks that measure the server alone.

The server listens on a free port on 127.0.0.1 and logs to a file (a pipe
nobody reads would block a chatty server once its buffer fills); starting
returns once grpc health says SERVING, and fails at once, with the end of the
log, if the process exits first. The port is chosen before the server binds
it, so another process may take it in between: starting then tries another.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from podium.testing.waiting import HANG_TIMEOUT

__all__ = [
    "CLI",
    "STOP_TIMEOUT",
    "ChildProcess",
    "PortTaken",
    "ServerExited",
    "ServerProcess",
    "start_server_process",
    "start_server_process_async",
]

# The `podium` console script is this module run by this interpreter; using
# it by module needs no PATH and works in any virtual environment.
CLI = (sys.executable, "-m", "podium.cli")
# How long a SIGTERM gets (the server's own --grace comes first) before SIGKILL.
STOP_TIMEOUT = 30.0
PORT_ATTEMPTS = 3
# How often to ask for health while the server starts. The channel's reconnect
# backoff follows suit: by default it grows to seconds after the first refused
# connections, and SERVING would be noticed that much later.
HEALTH_POLL_MS = 50
_HEALTH_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", HEALTH_POLL_MS),
    ("grpc.min_reconnect_backoff_ms", HEALTH_POLL_MS),
    ("grpc.max_reconnect_backoff_ms", HEALTH_POLL_MS),
)
# What `podium serve` says, as it exits, when its port is taken.
_PORT_TAKEN = "cannot listen"


class ServerExited(RuntimeError):
    """The server process ended before it served; the message ends with its log."""


class PortTaken(ServerExited):
    """Another process had the port: the server could not listen and exited."""


@dataclass
class ChildProcess:
    """A `podium` command running as a process of its own, logging to a file."""

    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        """Everything the process wrote (stdout and stderr) so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the process's log."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM (a graceful stop: a server leaves its runs resumable), then SIGKILL
        if the process is still there after `timeout` seconds; returns the
        exit code (0: it stopped gracefully; negative: killed by a signal)."""
        if self.running:
            self.process.terminate()
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        return self.kill()

    def kill(self) -> int:
        """SIGKILL, as a crash: nothing is flushed, nothing is shut down."""
        if self.running:
            self.process.kill()
        return self.process.wait()

    async def stop_async(self, timeout: float = STOP_TIMEOUT) -> int:
        """`stop()` without blocking the event loop."""
        return await asyncio.to_thread(self.stop, timeout)


@dataclass
class ServerProcess(ChildProcess):
    """A running `podium serve`. Use it as a context manager (sync or async)
    to stop it when the block ends, or call `stop()` / `kill()` yourself."""

    address: str
    # The environment it runs in, PODIUM_ADDRESS included: a CLI run with it
    # talks to this server.
    env: dict[str, str]
    cwd: Path | None
    spawned_at: float  # time.time() when the process that serves was spawned

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    def cli(
        self, *args: str, timeout: float = HANG_TIMEOUT, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Runs `podium ARGS...` against this server (in its environment and
        working directory); never raises on a non-zero exit."""
        return subprocess.run(
            [*CLI, *args],
            cwd=self.cwd,
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> ServerProcess:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop_async()


def start_server_process(
    db: str | Path | None,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    log_dir: str | Path | None = None,
    grace: float | None = 2.0,
    startup_timeout: float = HANG_TIMEOUT,
    ports: Iterable[int] | None = None,
    file_size_limit: int | None = None,
    cli: Sequence[str] = CLI,
) -> ServerProcess:
    """Starts `podium serve --db DB` (None: the server's default database,
    relative to `cwd`) on a free port and returns once it is SERVING.

    `args` are further `podium serve` options (`--policy`, `--retention`),
    `env` variables added to this process's environment, `log_dir` where the
    log file goes (default: next to `db`). `grace` is `--grace`: how long
    in-flight calls get on SIGTERM (None: the server's default). `ports` are
    the ports to try in turn, the next one when a port turns out taken
    (default: PORT_ATTEMPTS free ports, each chosen just before its try).
    `file_size_limit` (bytes) caps every file the server writes, as a full
    disk does: writes past it fail with EFBIG (SIGXFSZ is ignored). `cli` is
    the `podium` command (default: this interpreter's; another environment's
    `bin/podium` to test an installation).
    """
    directory = Path(log_dir) if log_dir is not None else _default_log_dir(db)
    command = [*cli, "serve"]
    if db is not None:
        command += ["--db", str(db)]
    if grace is not None:
        command += ["--grace", f"{grace:g}"]
    command += args
    candidates = list(ports) if ports is not None else None
    tries = len(candidates) if candidates is not None else PORT_ATTEMPTS
    if not tries:
        raise ValueError("no port to try")
    for attempt, port in enumerate(candidates or _free_ports(tries), start=1):
        address = f"127.0.0.1:{port}"
        full_env = {**os.environ, **(env or {}), "PODIUM_ADDRESS": address}
        handle, name = tempfile.mkstemp(
            prefix=f"podium-serve-{address.rsplit(':', 1)[1]}-", suffix=".log", dir=directory
        )
        with os.fdopen(handle, "wb") as log:
            spawned_at = time.time()
            process = subprocess.Popen(
                [*command, "--address", address],
                cwd=cwd,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=None if file_size_limit is None else _limit_files(file_size_limit),
            )
        server = ServerProcess(
            process,
            Path(name),
            address,
            full_env,
            Path(cwd) if cwd is not None else None,
            spawned_at,
        )
        try:
            _wait_until_serving(server, startup_timeout)
        except PortTaken:
            if attempt < tries:
                continue  # another process bound the port first
            raise
        except BaseException:
            server.kill()
            raise
        return server
    raise AssertionError("unreachable: the last attempt returns or raises")


async def start_server_process_async(db: str | Path | None, **options: Any) -> ServerProcess:
    """`start_server_process()` without blocking the event loop."""
    return await asyncio.to_thread(start_server_process, db, **options)


def _limit_files(size: int) -> Callable[[], None]:
    def limit() -> None:  # runs in the child, before exec
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def _default_log_dir(db: str | Path | None) -> Path:
    if db is None or str(db) == ":memory:":
        raise ValueError("pass log_dir: there is no database file to put the log next to")
    return Path(db).parent


def _free_ports(count: int) -> Iterator[int]:
    """A port free when asked for, `count` times (chosen lazily: each just
    before its try, the smaller the window for another process to take it)."""
    for _ in range(count):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        yield port  # released: the server binds it next


def _wait_until_serving(server: ServerProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(server.address, options=_HEALTH_CHANNEL_OPTIONS) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)  # typeshed's stub lists no methods
        while time.monotonic() < deadline:
            if not server.running:
                log = server.log_tail()
                if _PORT_TAKEN in log:
                    raise PortTaken(f"{server.address} is taken; {server.log_path.name}:\n{log}")
                raise ServerExited(
                    f"podium serve exited with code {server.process.returncode} before serving;"
                    f" {server.log_path.name}:\n{server.log_tail()}"
                )
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass  # not listening yet
            time.sleep(HEALTH_POLL_MS / 1000)
    raise TimeoutError(
        f"podium serve was not SERVING after {timeout:g} s; {server.log_path.name}:\n"
        f"{server.log_tail()}"
    )
