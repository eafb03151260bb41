"""Cluster mode: this server's part among several sharing one database.

Two loops. The lease loop renews this server's lease, takes over the runs of
servers whose lease expired (a fair share per pass, so survivors split them),
and gives up runs the database says another server now owns. The poll loop
streams other servers' events into the local hub (so WatchRun / WatchRuns
here see runs owned elsewhere), carries out the commands queued for runs
this server owns (CancelRun / ResolveApproval received by another server),
and adopts the circuit-breaker changes other servers published (`sync`).

Leases use the wall clock (time.time), not the engine's clock: they are
compared across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from podium.core.refusals import reported_by_caller
from podium.engine.hub import EventHub
from podium.engine.outage_log import OutageLog
from podium.engine.ports import ClusterStore, RunCommand
from podium.engine.relay import TaskRelay

log = logging.getLogger("podium.engine")

# 7 s: a renewal every 1.75 s, and a dead server's runs taken over within
# 7 + 1.75 s of its death, inside the 10 s a failover may take.
DEFAULT_LEASE_SECONDS = 7.0
DEFAULT_POLL_SECONDS = 0.05
# A dead server's rows (shared quota leases, worker presence, its lease row) are
# deleted this many leases after its lease expired: long past its takeover, and
# far longer than a live server is late to renew unless its runs were taken over.
FORGET_AFTER_LEASES = 10
FEED_PAGE = 1000


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """`lease_seconds`: how long a server's runs stay its own without a renewal
    (a dead server's runs are taken over after at most this, plus one pass of the
    lease loop: a quarter of it). `poll_seconds`: how often other servers'
    events and commands are read (the latency they add)."""

    lease_seconds: float = DEFAULT_LEASE_SECONDS
    poll_seconds: float = DEFAULT_POLL_SECONDS

    def __post_init__(self) -> None:
        if not self.lease_seconds > 0:
            raise ValueError("lease_seconds must be positive")
        if not self.poll_seconds > 0:
            raise ValueError("poll_seconds must be positive")

    @property
    def renew_seconds(self) -> float:
        return self.lease_seconds / 4

    @property
    def forget_seconds(self) -> float:
        """How long after a server's lease expired its rows are deleted."""
        return self.lease_seconds * FORGET_AFTER_LEASES


class ClusterMember:
    def __init__(
        self,
        store: ClusterStore,
        settings: ClusterSettings,
        hub: EventHub,
        *,
        resume: Callable[[list[str]], Awaitable[None]],
        lose: Callable[[set[str]], None],
        apply: Callable[[RunCommand], Awaitable[dict[str, Any] | None]],
        durable: Callable[[], Awaitable[None]],
        sync: Callable[[], Awaitable[None]] | None = None,
        relay: TaskRelay | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self._hub = hub
        self._resume = resume
        self._lose = lose
        self._apply = apply
        self._durable = durable
        self._sync = sync
        self._relay = relay
        self._tasks: list[asyncio.Task[None]] = []
        self._applying: set[int] = set()
        self._commands: set[asyncio.Task[None]] = set()
        # Set once this server's lease is registered (its shared leases count).
        self.joined = asyncio.Event()
        # When this server's lease last renewed (time.time), and when it last
        # deleted dead servers' rows.
        self._renewed = 0.0
        self._forgotten = 0.0
        # The loops retry every few milliseconds while the database is out of
        # reach: one line per outage and a minute, not one per pass.
        self._lease_outage = OutageLog(log, "cluster: lease pass", time.monotonic)
        self._poll_outage = OutageLog(log, "cluster: poll pass", time.monotonic)

    @property
    def server_id(self) -> str:
        return self.store.server_id

    async def start(self) -> None:
        """Joins (durable lease), takes back the runs of an earlier life under the
        same id, then takes over orphaned runs and keeps doing both in the background."""
        self.store.on_lost(self._lose)
        position = await self.store.feed_position()
        if self._relay is not None:
            await self._relay.start()
        joined = time.time()
        mine = await self.store.join(joined, self.settings.lease_seconds)
        self._renewed = joined
        self.joined.set()
        if self._relay is not None:
            # What relay.start published came before this server had a lease row:
            # another server may have deleted it as a dead server's.
            self._relay.republish()
        log.info(
            "cluster mode: server %s joined (lease %.1fs)",
            self.server_id,
            self.settings.lease_seconds,
        )
        if mine:
            await self._resume(mine)
        self._tasks = [
            asyncio.create_task(self._lease_loop(), name="podium-cluster-lease"),
            asyncio.create_task(self._poll_loop(position), name="podium-cluster-poll"),
        ]

    async def stop(self, *, leave: bool) -> None:
        """Stops both loops; with `leave`, removes the lease so that the others take
        this server's runs over at once (a graceful stop)."""
        tasks = [*self._tasks, *self._commands]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._relay is not None:
            await self._relay.stop()
        if leave:
            try:
                await self.store.leave()
            except Exception:
                log.exception("cluster: could not remove this server's lease")

    async def _lease_loop(self) -> None:
        while True:
            try:
                await self.lease_pass()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._lease_outage.failed(error)
            else:
                self._lease_outage.succeeded()
            await asyncio.sleep(self.settings.renew_seconds)

    async def lease_pass(self) -> None:
        """Renews, takes over, gives up, and now and then deletes what dead servers
        left: one pass of the lease loop."""
        now = time.time()
        # The first read of each pass: a lost database fails it, and the loop
        # logs that (OutageLog), not the store once a pass.
        with reported_by_caller():
            await self.store.renew(now, self.settings.lease_seconds)
        if now - self._renewed > self.settings.lease_seconds and self._relay is not None:
            # This lease had expired (a frozen process, a database out of reach): the
            # others may have deleted this server's worker presence as a dead one's.
            self._relay.republish()
        self._renewed = now
        claimed = await self.store.take_over(now)
        if claimed:
            log.info("cluster: taking over %d runs of stopped servers", len(claimed))
            await self._resume(claimed)
        if now - self._forgotten >= self.settings.lease_seconds:
            # Once per lease is enough for rows that wait ten of them.
            self._forgotten = now
            forgotten = await self.store.forget_servers(now - self.settings.forget_seconds)
            if forgotten:
                log.info("cluster: deleted %d rows of servers gone for good", forgotten)
        lost = await self.store.lost_runs()
        if lost:
            log.warning("cluster: %d runs are now owned by another server", len(lost))
            self._lose(lost)

    async def _poll_loop(self, position: int) -> None:
        while True:
            try:
                position = await self._relay_events(position)
                await self._apply_commands()
                if self._sync is not None:
                    await self._sync()
                if self._relay is not None:
                    await self._relay.poll()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._poll_outage.failed(error)
            else:
                self._poll_outage.succeeded()
            await asyncio.sleep(self.settings.poll_seconds)

    async def _relay_events(self, position: int) -> int:
        while True:
            with reported_by_caller():  # as renew in lease_pass
                events, position = await self.store.events_after(position, FEED_PAGE)
            if events:
                self._hub.publish(events, remote=True)
            if not events:
                return position

    async def _apply_commands(self) -> None:
        """Starts each new command in a task of its own: a cancellation waits for
        its agents to unwind, which must not hold the relay of events."""
        for command in await self.store.pending_commands():
            if command[0] not in self._applying:
                self._applying.add(command[0])
                task = asyncio.create_task(self._apply_one(command))
                self._commands.add(task)
                task.add_done_callback(self._commands.discard)

    async def _apply_one(self, command: RunCommand) -> None:
        try:
            try:
                result = await self._apply(command)
            except Exception as error:  # a command never stops the loop
                log.exception("cluster: command %d failed", command[0])
                result = {"error": "internal", "message": str(error)}
            if result is None:
                return  # not now (the run is being resumed here): the next poll retries
            self.store.finish_command(command[0], result)
            await self._durable()
        finally:
            self._applying.discard(command[0])
