"""Watches the store while serving: once it refuses writes (its file was
deleted or replaced, a batch failed on I/O or a full disk, the PostgreSQL
database stopped answering), health turns NOT_SERVING for every service and
the log says why, once.

Reads keep working where they can; writes fail UNAVAILABLE or
RESOURCE_EXHAUSTED (see podium.store.group_commit). Restarting the server is
the way back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Protocol

from grpc_health.v1 import health, health_pb2

from podium.core.errors import PodiumError

log = logging.getLogger("podium.server")

CHECK_INTERVAL = 0.5  # seconds; a file check is one stat()


class CheckedStore(Protocol):
    def check(self) -> PodiumError | None:
        """Why the store refuses writes, or None while it takes them."""


class StoreWatch:
    def __init__(
        self,
        store: CheckedStore,
        health_servicer: health.aio.HealthServicer,
        services: Iterable[str],
        interval: float = CHECK_INTERVAL,
    ) -> None:
        self._store = store
        self._health = health_servicer
        self._services = tuple(services)
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="podium-store-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while True:
            failure = self._store.check()
            if failure is not None:
                log.error("not serving: %s", failure.message)
                for name in self._services:
                    await self._health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
                return
            await asyncio.sleep(self._interval)
