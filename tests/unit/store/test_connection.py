"""ThreadConnection (store/sqlite/connection.py): a SQLite connection owned by a
thread of its own; a call runs a function there, one at a time, in order."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from podium.store.sqlite.connection import ConnectionClosed, ThreadConnection


async def test_calls_run_in_order_on_one_thread_that_is_not_the_loops(tmp_path: Path) -> None:
    conn = ThreadConnection(str(tmp_path / "db"), "test-db")
    await conn.open()
    try:
        seen: list[tuple[int, str]] = []

        def note(_: sqlite3.Connection, n: int) -> int:
            seen.append((n, threading.current_thread().name))
            return n * 2

        results = await asyncio.gather(*(conn.call(note, n) for n in range(50)))
        assert results == [n * 2 for n in range(50)]
        assert [n for n, _ in seen] == list(range(50))
        assert {name for _, name in seen} == {"test-db"}
        assert threading.current_thread().name != "test-db"
    finally:
        await conn.close()


async def test_an_error_reaches_the_caller_and_the_connection_goes_on(tmp_path: Path) -> None:
    conn = ThreadConnection(str(tmp_path / "db"), "test-db")
    await conn.open()
    try:
        with pytest.raises(sqlite3.OperationalError):
            await conn.call(lambda c: c.execute("SELECT * FROM missing"))
        assert await conn.call(lambda c: c.execute("SELECT 41 + 1").fetchone()[0]) == 42
    finally:
        await conn.close()


async def test_a_closed_connection_refuses_calls_and_its_thread_has_ended(tmp_path: Path) -> None:
    conn = ThreadConnection(str(tmp_path / "db"), "test-db-closed")
    await conn.open()
    await conn.close()
    with pytest.raises(ConnectionClosed):
        conn.call(lambda c: None)
    assert "test-db-closed" not in {t.name for t in threading.enumerate()}
    await conn.close()  # twice is harmless


async def test_a_connection_that_cannot_open_leaves_no_thread(tmp_path: Path) -> None:
    conn = ThreadConnection(str(tmp_path / "missing-dir" / "db"), "test-db-failed")
    with pytest.raises(sqlite3.OperationalError):
        await conn.open()
    assert "test-db-failed" not in {t.name for t in threading.enumerate()}
