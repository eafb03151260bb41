"""`make demo`: a server on the embedded SQLite default, the ERP workflow applied
and run with live progress, then the result and the spend; the server stops.

Everything goes through the real `podium` CLI, as a user would type it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
PODIUM = str(Path(sys.executable).with_name("podium"))


def free_port() -> int:
    # The default 127.0.0.1:50051 may be taken by a server the user runs.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(address: str, server: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        # typeshed's HealthStub declares no methods; the runtime stub has Check.
        stub: Any = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"demo: the server exited with code {server.returncode}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise SystemExit("demo: the server did not become ready in time")


def step(title: str, *args: str, env: dict[str, str]) -> None:
    print(f"\n$ podium {' '.join(args)}", flush=True)
    result = subprocess.run([PODIUM, *args], cwd=ROOT, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"demo: {title} failed (exit {result.returncode})")


def main() -> int:
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "PODIUM_ADDRESS": address}
    print(f"$ podium serve --address {address}   (database: ./.podium/podium.db)", flush=True)
    server = subprocess.Popen(
        [PODIUM, "serve", "--address", address], cwd=ROOT, env=env, stderr=subprocess.DEVNULL
    )
    try:
        wait_until_serving(address, server)
        step("plugins", "plugins", env=env)
        step("apply", "workflows", "apply", "-f", "examples/erp.yaml", env=env)
        step("validate", "workflows", "validate", "-f", "examples/erp.yaml", env=env)
        step(
            "run",
            "runs", "start", "erp", "--input", "@examples/erp-input.json", "--watch",
            env=env,
        )  # fmt: skip
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    print("\nserver stopped; the run is kept in ./.podium/podium.db", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
