"""Idempotent run creation: one run per (tenant, request id).

StartRun and RerunRun create a run at most once per request id: the run
carries its request id (durably, unique within its tenant), so a retry
finds it, after a restart too; concurrent calls with the same id wait for
the first instead of racing it. The same id with a different request (its
hash differs) is AlreadyExists, REQUEST_ID_REUSED.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from podium.core.errors import AlreadyExists
from podium.core.model import RunView

__all__ = ["RequestClaims"]

Read = Callable[[str], Awaitable[RunView]]
Find = Callable[[str, str], Awaitable[str | None]]


class RequestClaims:
    """`find(request_id, tenant)`: the run id carrying a request id, if any;
    `read(run_id)`: that run."""

    def __init__(self, find: Find, read: Read) -> None:
        self._find = find
        self._read = read
        self._pending: dict[tuple[str, str], asyncio.Future[str]] = {}

    async def once(
        self,
        tenant: str,
        request_id: str,
        request_hash: str,
        create: Callable[[], Awaitable[RunView]],
    ) -> RunView:
        """The run `create()` makes (with this request id and hash), or the
        one an earlier call with the same request id made."""
        claim = (tenant, request_id)
        pending = self._pending.get(claim)
        if pending is not None:
            run_id = await asyncio.shield(pending)
            return await self._same(run_id, request_id, request_hash)
        # Claim the key before the first await, so that concurrent calls with
        # the same request_id wait for this one instead of racing it.
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending[claim] = future
        try:
            existing = await self._find(request_id, tenant)
            if existing is not None:
                future.set_result(existing)
                return await self._same(existing, request_id, request_hash)
            view = await create()
            future.set_result(view.run.run_id)
            return view
        except BaseException as error:
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: the waiters re-raise it themselves
            raise
        finally:
            if self._pending.get(claim) is future:
                del self._pending[claim]

    async def _same(self, run_id: str, request_id: str, request_hash: str) -> RunView:
        view = await self._read(run_id)
        if view.run.request_hash != request_hash:
            raise AlreadyExists(
                f"request_id {request_id!r} was already used for a different request "
                f"(run runs/{run_id})",
                resource=f"runs/{run_id}",
                reason="REQUEST_ID_REUSED",
            )
        return view
