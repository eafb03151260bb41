"""The pool as the store's reads and claims use it: a query that fails because
the database is gone (its connection closed or refused, the server shutting
down, no answer in time) raises Unavailable (STORAGE_UNAVAILABLE) naming the
database, so that the request is refused UNAVAILABLE with a reason and one
line in the log, instead of INTERNAL and a traceback. Any other error (a
constraint, a bug in a statement) passes unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from podium.core.errors import Unavailable
from podium.core.refusals import caller_reports

log = logging.getLogger("podium.store")

# What a query raises when the database itself is out of reach, as opposed to
# what it raises about the statement (PostgresError's other subclasses).
LOST = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,  # ConnectionDoesNotExistError among them
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
)


def lost(path: str, error: BaseException) -> Unavailable:
    detail = str(error) or type(error).__name__
    refused = Unavailable(f"lost the database {path}: {detail}", reason="STORAGE_UNAVAILABLE")
    if not caller_reports():  # a background loop's retry: the loop says it, once a minute
        log.warning("refused: %s", refused.message)
    return refused


class GuardedPool:
    """The few pool methods the store uses, each translating a lost database."""

    __slots__ = ("_path", "_pool")

    def __init__(self, pool: asyncpg.Pool, path: str) -> None:
        self._pool = pool
        self._path = path

    async def fetch(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        try:
            return list(await self._pool.fetch(sql, *params))
        except LOST as error:
            raise lost(self._path, error) from error

    async def fetchrow(self, sql: str, *params: Any) -> asyncpg.Record | None:
        try:
            row: asyncpg.Record | None = await self._pool.fetchrow(sql, *params)
        except LOST as error:
            raise lost(self._path, error) from error
        return row

    async def fetchval(self, sql: str, *params: Any) -> Any:
        try:
            return await self._pool.fetchval(sql, *params)
        except LOST as error:
            raise lost(self._path, error) from error

    async def execute(self, sql: str, *params: Any) -> str:
        try:
            return str(await self._pool.execute(sql, *params))
        except LOST as error:
            raise lost(self._path, error) from error

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[PoolConnectionProxy]:
        """A connection; a lost database raised inside the block (by a query,
        or by the rollback of its transaction) is translated too."""
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except LOST as error:
            raise lost(self._path, error) from error
