"""A prober in a process of its own, so that what it measures is the server's
latency and not the bench driver's own pauses: building and decoding a
10,000-step definition, a collection of the garbage earlier workloads left in
the driver's process, or a thousand WatchRun streams of its own held the
driver's event loop (and so the reading of a reply that had arrived) for up to
200 ms.

The driver's side is `Prober` (below). The process prints "waiting" once its
imports are done, so that it can be started before the server it probes
exists, then reads its target from the first line of standard input, a JSON
object {"address": ..., "runs": [run names]}. It prints "ready" once the server
answered a first check, then, until its standard input closes, sends
grpc.health.v1 Check every 10 ms (with `runs`: a health check and a GetRun of
the next run, striding through them, every 5 ms), and prints the latencies in
seconds as a JSON object {"health": [...], "get_run": [...]}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from podium.v1 import execution_service_pb2, execution_service_pb2_grpc

PROBE_INTERVAL_S = 0.01
# With GetRuns: each round is two calls.
PROBE_INTERVAL_WITH_RUNS_S = 0.005
# Through the runs by this stride, not always the first resumed.
RUN_STRIDE = 997


async def probe(address: str, runs: list[str]) -> dict[str, list[float]]:
    async with grpc.aio.insecure_channel(address) as channel:
        # Typed Any: the type stubs of grpc_health know no methods.
        health: Any = health_pb2_grpc.HealthStub(channel)
        executions = execution_service_pb2_grpc.ExecutionServiceStub(channel)
        request = health_pb2.HealthCheckRequest(service="")
        await health.Check(request, wait_for_ready=True)
        print("ready", flush=True)
        # Standard input closing is the signal to stop.
        closed = asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        latencies: dict[str, list[float]] = {"health": [], "get_run": []}
        interval = PROBE_INTERVAL_WITH_RUNS_S if runs else PROBE_INTERVAL_S
        index = 0
        while not closed.done():
            sent = time.perf_counter()
            reply = await health.Check(request)
            latencies["health"].append(time.perf_counter() - sent)
            if reply.status != health_pb2.HealthCheckResponse.SERVING:
                raise SystemExit("error: the server is not SERVING")
            if runs:
                sent = time.perf_counter()
                name = runs[index % len(runs)]
                await executions.GetRun(execution_service_pb2.GetRunRequest(name=name))
                latencies["get_run"].append(time.perf_counter() - sent)
                index += RUN_STRIDE
            await asyncio.sleep(interval)
        return latencies


class Prober:
    """The prober process, from the driver."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @classmethod
    async def start(cls) -> Prober:
        """Spawned and imported, waiting for its target."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__).resolve()),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        prober = cls(process)
        await prober._expect(b"waiting")
        return prober

    async def aim(self, address: str, runs: Sequence[str] = ()) -> None:
        """Probes `address` (and GetRun of `runs`) from now on."""
        assert self._process.stdin is not None
        target = {"address": address, "runs": list(runs)}
        self._process.stdin.write(json.dumps(target).encode() + b"\n")
        await self._process.stdin.drain()
        await self._expect(b"ready")

    async def stop(self) -> dict[str, list[float]]:
        """The latencies (seconds) measured since `aim`."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.close()
        output = await self._process.stdout.read()
        if await self._process.wait() != 0:
            # Its one-line error (the server not SERVING, a refused call) is on stderr.
            raise RuntimeError(f"the health prober failed (exit {self._process.returncode})")
        latencies: dict[str, list[float]] = json.loads(output)
        return latencies

    async def close(self) -> None:
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
        await self._process.wait()

    async def _expect(self, line: bytes) -> None:
        assert self._process.stdout is not None
        got = (await self._process.stdout.readline()).strip()
        if got != line:
            raise RuntimeError(f"the health prober said {got!r}, not {line.decode()}")


@contextlib.asynccontextmanager
async def probing(address: str) -> AsyncIterator[list[float]]:
    """Health latencies (seconds) measured by a prober process while the block runs."""
    prober = await Prober.start()
    latencies: list[float] = []
    try:
        await prober.aim(address)
        yield latencies
        latencies += (await prober.stop())["health"]
    finally:
        await prober.close()


def main() -> int:
    print("waiting", flush=True)
    target = json.loads(sys.stdin.readline())
    latencies = asyncio.run(probe(target["address"], list(target.get("runs", []))))
    print(json.dumps(latencies), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
