"""The database as GetSystemStatus reports it: which backend, whether it
answers a trivial query now and how fast, whether it still takes writes.

The ping is bounded (PING_TIMEOUT): an operator asking for the status of a
server whose database hangs gets "unreachable" rather than a hung call.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from google.protobuf import duration_pb2

from podium.core.errors import PodiumError
from podium.v1 import control_service_pb2

PING_TIMEOUT = 2.0  # seconds


class PingedStore(Protocol):
    backend: str

    async def ping(self) -> None:
        """Raises when the database does not answer a trivial query."""

    def check(self) -> PodiumError | None:
        """Why the store refuses writes, or None while it takes them."""


async def database_status(
    store: PingedStore, timeout: float = PING_TIMEOUT
) -> control_service_pb2.DatabaseStatus:
    started = time.perf_counter()
    error = ""
    try:
        async with asyncio.timeout(timeout):
            await store.ping()
        reachable = True
    except TimeoutError:
        reachable, error = False, f"no answer to a ping within {timeout:g} s"
    except Exception as failure:  # whatever the driver raises: the database is not answering
        reachable, error = False, str(failure) or type(failure).__name__
    latency = duration_pb2.Duration()
    latency.FromNanoseconds(int((time.perf_counter() - started) * 1e9))
    refused = store.check()
    if refused is not None and not error:
        error = refused.message
    return control_service_pb2.DatabaseStatus(
        backend=store.backend,
        reachable=reachable,
        ping_latency=latency,
        writable=refused is None,
        error=error,
    )
