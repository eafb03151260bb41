"""Starting a `podium serve` process for the demos: a free port, and waiting
until grpc health says SERVING."""

from __future__ import annotations

import socket
import subprocess
import time
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    # The default 127.0.0.1:50051 may be taken by a server the user runs.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(address: str, server: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # typeshed's stub lists no methods
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
