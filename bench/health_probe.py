"""A health prober in a process of its own, so that what it measures is the
server's latency and not the bench driver's own pauses: building and decoding
a 10,000-step definition, or a collection of the garbage earlier workloads
left in the driver's process, held the driver's event loop (and so the reading
of a health reply that had arrived) for up to 200 ms.

Usage: `python bench/health_probe.py ADDRESS`. Prints "ready" once the server
answered a first check, then sends grpc.health.v1 Check every 10 ms until its
standard input closes, and prints the latencies in seconds as a JSON list.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

PROBE_INTERVAL_S = 0.01


async def probe(address: str) -> list[float]:
    async with grpc.aio.insecure_channel(address) as channel:
        # Typed Any: the type stubs of grpc_health know no methods.
        health: Any = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="")
        await health.Check(request)
        print("ready", flush=True)
        # Standard input closing is the signal to stop.
        closed = asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        latencies: list[float] = []
        while not closed.done():
            sent = time.perf_counter()
            await health.Check(request)
            latencies.append(time.perf_counter() - sent)
            await asyncio.sleep(PROBE_INTERVAL_S)
        return latencies


def main() -> int:
    latencies = asyncio.run(probe(sys.argv[1]))
    print(json.dumps(latencies), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
