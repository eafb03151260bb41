"""A SQLite connection owned by a thread of its own, one hop per call.

`call(fn, *args)` runs `fn(conn, *args)` on the connection's thread and
resolves an asyncio future with its result: one trip to the thread and one
wake-up of the event loop, whatever `fn` does. A group commit (BEGIN, every
upsert, COMMIT) or a read of several queries is one function, so it costs one
hop, where a statement-per-call wrapper (aiosqlite) pays a hop per statement.

Calls run one at a time in submission order, so a reader sharing the writer's
connection (":memory:") never sees a transaction half done: the batch that
holds it is a single call.

The thread is a daemon: a store that failed to close must not keep the
process alive (a server that cannot start has to exit).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]
_STOP = None


class ConnectionClosed(RuntimeError):
    """A call on a connection that is closed (or was never opened)."""


class ThreadConnection:
    def __init__(self, path: str, name: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._open = False

    async def open(self) -> None:
        """Connects on the thread (autocommit: callers issue BEGIN/COMMIT)."""
        self._thread.start()
        self._open = True
        try:
            await self._submit(self._connect)
        except BaseException:
            await self.close()
            raise

    def _connect(self) -> None:
        self._conn = sqlite3.connect(self.path, isolation_level=None)

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """A future of `fn(conn, *args)` run on the connection's thread."""
        if not self._open:
            raise ConnectionClosed(f"the connection to {self.path} is closed")

        def job() -> T:
            conn = self._conn
            if conn is None:
                raise ConnectionClosed(f"the connection to {self.path} is closed")
            return fn(conn, *args)

        return self._submit(job)

    async def close(self) -> None:
        """Runs what is queued, closes the connection and ends the thread."""
        if not self._open:
            return
        self._open = False
        try:
            await self._submit(self._disconnect)
        finally:
            self._jobs.put(_STOP)
            await asyncio.to_thread(self._thread.join)

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, fn))
        return future

    def _serve(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is _STOP:
                self._disconnect()
                return
            loop, future, fn = job
            try:
                result = fn()
            except BaseException as error:  # delivered to the caller, whatever it is
                _deliver(loop, future, None, error)
            else:
                _deliver(loop, future, result, None)


def _deliver(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    result: Any,
    error: BaseException | None,
) -> None:
    # A closed loop raises RuntimeError: nobody is waiting any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller gave up (cancelled)
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
