"""The writer's batch is one transaction (store/sqlite/writer.py): everything
submitted together commits together, or nothing of it does."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from podium.core.errors import Unavailable
from podium.store.sqlite.store import SqliteStore

from .records import run_record


async def test_a_batch_that_fails_leaves_nothing_of_it_and_refuses_what_follows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "podium.db"
    store = SqliteStore(str(path))
    await store.open()
    try:
        store.put_run(run_record("committed"))
        await store.commit()
        store.put_run(run_record("r1"))
        store.writer.execute("INSERT INTO no_such_table VALUES (1)")
        store.put_run(run_record("r2"))
        with pytest.raises(Unavailable):
            await store.commit()
        # Acknowledging anything after a failed batch could acknowledge what
        # was never committed.
        store.put_run(run_record("r3"))
        with pytest.raises(Unavailable):
            await store.commit()
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        runs = {row[0] for row in conn.execute("SELECT run_id FROM runs")}
    assert runs == {"committed"}


def test_only_full_and_normal_are_synchronous_modes() -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStore(":memory:", synchronous="OFF")
