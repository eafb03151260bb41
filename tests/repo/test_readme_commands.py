"""Every shell command the README shows runs, as shown, against real `podium serve` processes.

Each ```sh block runs in order in one scratch directory (holding the repository's examples),
line by line through bash with the workspace's `podium` first on PATH:

- `podium serve …` starts in the background on an ephemeral 127.0.0.1 port (a documented
  `--address`, loopback or not, is replaced; tests never bind anything else) and the block
  goes on once its health check says SERVING; later lines of the block talk to it (its
  documented address is rewritten, and PODIUM_ADDRESS points at it). Its `--http-address`
  and `--metrics-address` get ephemeral ports too, rewritten wherever later lines name them.
  A server whose line ends with `&` stays up for the blocks that follow (as it would for a
  reader); any other stops with its block.
- A `postgresql://` URL is replaced by a new database on the tests' PostgreSQL server.
- `podium worker …` starts in the background and the block goes on once the server lists it.
- Blocks without a server of their own talk to a shared one started as the README's
  governance section says (`--policy examples/policy.yaml`).
- `RUN_ID` is the run the block's last `podium runs start` printed.
- `make demo` and `make test` are the only lines not run here: CI runs them itself.

Every line must exit 0.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from podium.client import Client
from podium.testing.identity import make_ca, make_certificate
from podium.testing.postgres import PostgresForTests

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent
DOCUMENTED_ADDRESSES = ("127.0.0.1:50051", "0.0.0.0:50051")
POSTGRES_URL = re.compile(r"'?postgresql://[^\s']+'?")
NOT_RUN_HERE = {"make demo", "make test"}
STARTUP_TIMEOUT = 60.0
COMMAND_TIMEOUT = 180.0


def shell_blocks() -> list[list[str]]:
    """The README's ```sh blocks as command lines (continuations joined, comment lines
    dropped)."""
    blocks = []
    for body in re.findall(r"^```sh\n(.*?)^```", README, flags=re.S | re.M):
        lines: list[str] = []
        pending = ""
        for raw in body.splitlines():
            if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
                continue
            if raw.rstrip().endswith("\\"):
                pending += raw.rstrip()[:-1] + " "
                continue
            lines.append((pending + raw).strip())
            pending = ""
        blocks.append(lines)
    return blocks


def words(line: str) -> list[str]:
    return shlex.split(line, comments=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Background:
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Session:
    """What the lines of one block share: the scratch directory, the environment, the server
    they talk to, the run they name, and what runs in the background."""

    workdir: Path
    env: dict[str, str]
    address: str
    tls_ca: Path | None = None
    run_id: str = ""
    background: list[Background] = field(default_factory=list)
    # Documented host:port -> the one the test chose (HTTP and metrics addresses).
    ports: dict[str, str] = field(default_factory=dict)
    # Servers started with `&`: they outlive the block.
    lasting: list[Background] = field(default_factory=list)
    # Makes a database on the tests' PostgreSQL server; its URL.
    new_database: Callable[[], str] | None = None
    database: str = ""

    def stop(self) -> None:
        for process in reversed(self.background):
            process.stop()
        self.background.clear()


def option_value(argv: list[str], name: str) -> str | None:
    for index, word in enumerate(argv):
        if word == name and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def with_option(line: str, name: str, value: str) -> str:
    """`line` with `name`'s value replaced, or the option added at the end."""
    pattern = re.compile(rf"{re.escape(name)}(=|\s+)\S+")
    if pattern.search(line):
        return pattern.sub(f"{name} {value}", line, count=1)
    return f"{line} {name} {value}"


def rewrite_addresses(line: str, address: str, ports: dict[str, str]) -> str:
    for documented in DOCUMENTED_ADDRESSES:
        line = line.replace(documented, address)
    for documented, chosen in ports.items():
        line = line.replace(documented, chosen)
    return line.replace("RUN_ID", "{run_id}")


def wait_serving(session: Session, server: Background, address: str, tls: bool) -> None:
    if tls:
        assert session.tls_ca is not None
        credentials = grpc.ssl_channel_credentials(session.tls_ca.read_bytes())
        channel = grpc.secure_channel(address, credentials)
    else:
        channel = grpc.insecure_channel(address)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with channel:
        health: Any = health_pb2_grpc.HealthStub(channel)  # typeshed lists no methods
        while True:
            if server.process.poll() is not None:
                pytest.fail(f"podium serve exited: {server.log.read_text()[-2000:]}")
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"podium serve did not serve: {server.log.read_text()[-2000:]}")
            time.sleep(0.1)


def start_background(session: Session, line: str, name: str) -> Background:
    log = session.workdir / f"{name}-{len(session.background)}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            # bash runs a single command in place of itself, so stopping it stops the command.
            ["bash", "-c", line],
            cwd=session.workdir,
            env=session.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    background = Background(process, log)
    session.background.append(background)
    return background


def start_server(session: Session, line: str, lasting: bool = False) -> None:
    address = f"127.0.0.1:{free_port()}"
    line = with_option(line, "--address", address)
    metrics = option_value(words(line), "--metrics-address")
    if metrics is not None:
        session.ports[metrics] = f"127.0.0.1:{free_port()}"
        metrics = session.ports[metrics]
        line = with_option(line, "--metrics-address", metrics)
    http = option_value(words(line), "--http-address")
    if http is not None:
        session.ports[http] = f"127.0.0.1:{free_port()}"
        line = with_option(line, "--http-address", session.ports[http])
    if lasting and option_value(words(line), "--db") is None:
        # It outlives its block: a database of its own, so that later blocks' servers
        # and `tokens create --db` find theirs free.
        line = with_option(line, "--db", f"lasting-{len(session.lasting)}.db")
    server = start_background(session, line, "serve")
    if lasting:
        session.background.remove(server)
        session.lasting.append(server)
    wait_serving(session, server, address, tls="--tls-cert" in line)
    session.address = address
    session.env["PODIUM_ADDRESS"] = address
    if metrics is not None:
        with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as response:
            assert response.status == 200


def start_worker(session: Session, line: str) -> None:
    argv = words(line)
    queue = option_value(argv, "--queue") or "default"
    agent = option_value(argv, "--agent")
    worker = start_background(session, line, "worker")
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with Client(session.address) as client:
        while True:
            if worker.process.poll() is not None:
                pytest.fail(f"podium worker exited: {worker.log.read_text()[-2000:]}")
            served = {
                agent_info.name
                for agent_info in client.list_agents()
                if any(w.queue == queue and w.sessions for w in agent_info.workers)
            }
            if served and (agent is None or served == {agent}):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"the worker never appeared on queue {queue}: {served}")
            time.sleep(0.1)


def run_line(session: Session, line: str) -> None:
    export = re.match(r"^export (\w+)=(.*?)(\s+#.*)?$", line)
    script = f"printf %s {export.group(2)}" if export else line
    completed = subprocess.run(
        ["bash", "-c", f"set -euo pipefail; {script}"],
        cwd=session.workdir,
        env=session.env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"`{line}` exited {completed.returncode}:\n{output}"
    assert "Traceback" not in output, output
    if export:
        session.env[export.group(1)] = completed.stdout
    # The CLI says "started runs/ID"; the HTTP API answers {"run": {"name": "runs/ID", ...}}.
    started = re.search(r"started runs/(\S+)|\"name\": ?\"runs/([^\"]+)\"", completed.stdout)
    if started:
        session.run_id = started.group(1) or started.group(2)


def run_block(session: Session, lines: list[str]) -> None:
    for documented in lines:
        if " ".join(words(documented)) in NOT_RUN_HERE:
            continue
        line = rewrite_addresses(documented, session.address, session.ports)
        line = line.replace("{run_id}", session.run_id)
        if POSTGRES_URL.search(line):
            assert session.new_database is not None
            session.database = session.database or session.new_database()
            line = POSTGRES_URL.sub(shlex.quote(session.database), line)
        argv = words(line)
        lasting = bool(argv) and argv[-1] == "&"
        argv = argv[:-1] if lasting else argv
        command = argv[argv.index("podium") :] if "podium" in argv else argv
        if command[:2] == ["podium", "serve"]:
            # Without its comment, so that options can be added at the end.
            start_server(session, shlex.join(argv), lasting)
        elif command[:2] == ["podium", "worker"]:
            start_worker(session, shlex.join(argv))
        else:
            needs_run = "RUN_ID" in " ".join(words(documented))
            assert not needs_run or session.run_id, f"no run started for: {line}"
            run_line(session, line)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "examples", directory / "examples")
    # `buf curl --schema protos` reads the contract from the repository, as a reader's would.
    shutil.copytree(ROOT / "protos", directory / "protos")
    # The TLS files the security section names: a CA and a server certificate for 127.0.0.1.
    (directory / "pki").mkdir()
    ca = make_ca(directory / "pki")
    server = make_certificate(directory / "pki", ca, "podium", server=True)
    shutil.copy(ca.cert, directory / "ca.pem")
    shutil.copy(server.cert, directory / "server.pem")
    shutil.copy(server.key, directory / "server.key")
    return directory


@pytest.fixture(scope="module")
def shared(workdir: Path, postgres_server: PostgresForTests) -> Iterator[Session]:
    env = {
        **os.environ,
        # The workspace's podium, then buf (`buf curl`), then the system's.
        "PATH": os.pathsep.join(
            [str(BIN), str(ROOT / "node_modules" / ".bin"), os.environ.get("PATH", "")]
        ),
        "COLUMNS": "120",
    }
    for name in ("PODIUM_TOKEN", "PODIUM_TLS_CA", "PODIUM_ADDRESS", "OPENAI_API_KEY"):
        env.pop(name, None)
    session = Session(
        workdir,
        env,
        address="",
        new_database=lambda: asyncio.run(postgres_server.create_database()),
    )
    start_server(
        session,
        f"podium serve --policy examples/policy.yaml --db {workdir / 'shared.db'}",
    )
    yield session
    session.stop()
    for server in session.lasting:
        server.stop()


def test_the_readme_has_shell_blocks_and_only_make_is_left_to_ci() -> None:
    blocks = shell_blocks()
    assert len(blocks) >= 8
    lines = [line for block in blocks for line in block]
    assert {" ".join(words(line)) for line in lines if line.startswith("make ")} == NOT_RUN_HERE


@pytest.mark.parametrize("index", range(len(shell_blocks())))
def test_every_shell_block_runs(shared: Session, workdir: Path, index: int) -> None:
    lines = shell_blocks()[index]
    session = Session(
        workdir,
        dict(shared.env),
        shared.address,
        tls_ca=workdir / "ca.pem",
        ports=shared.ports,
        lasting=shared.lasting,
        new_database=shared.new_database,
        run_id=shared.run_id,
    )
    lasting_before = len(shared.lasting)
    try:
        run_block(session, lines)
    finally:
        session.stop()
    # The run a block started, and a server left running (`&`), are what the next blocks
    # talk about and to, as for a reader.
    shared.run_id = session.run_id
    if len(shared.lasting) > lasting_before:
        shared.env["PODIUM_ADDRESS"] = session.env["PODIUM_ADDRESS"]
        shared.address = session.address
