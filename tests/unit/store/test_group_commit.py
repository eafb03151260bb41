"""The writer's batch is one transaction (store/sqlite/writer.py): everything
submitted together commits together, or nothing of it does."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from podium.core.errors import Unavailable
from podium.store.sqlite.store import SqliteStore

from .records import run_record


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """A store on tmp_path / "podium.db"; a test may close it earlier itself."""
    opened = SqliteStore(str(tmp_path / "podium.db"))
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_batch_that_fails_leaves_nothing_of_it_and_refuses_what_follows(
    store: SqliteStore, tmp_path: Path
) -> None:
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
    await store.close()
    with sqlite3.connect(tmp_path / "podium.db") as conn:
        runs = {row[0] for row in conn.execute("SELECT run_id FROM runs")}
    assert runs == {"committed"}


def test_only_full_and_normal_are_synchronous_modes() -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStore(":memory:", synchronous="OFF")


async def test_a_batch_s_callbacks_have_run_when_the_next_batch_is_acknowledged(
    store: SqliteStore, tmp_path: Path
) -> None:
    # The writer thread releases the held callbacks once the next batch's rows
    # are written, just before its COMMIT: they run on the loop before that
    # batch's waiters hear of it, and only after their own batch is durable.
    seen: list[set[str]] = []

    def first_batch_published() -> None:
        with sqlite3.connect(tmp_path / "podium.db") as conn:
            seen.append({row[0] for row in conn.execute("SELECT run_id FROM runs")})

    store.put_run(run_record("r1"))
    store.after_commit(first_batch_published)
    await store.commit()
    store.put_run(run_record("r2"))
    await store.commit()
    assert len(seen) == 1, "run by the time the next batch is acknowledged"
    assert "r1" in seen[0], "never before its own batch is committed"


async def test_a_failed_batch_still_lets_the_callbacks_of_the_batch_before_run(
    store: SqliteStore,
) -> None:
    # A batch that fails before its COMMIT never reaches the point where the
    # thread releases the held callbacks: the failure path releases them.
    calls: list[str] = []
    store.put_run(run_record("r1"))
    store.after_commit(lambda: calls.append("committed"))
    await store.commit()
    store.put_run(run_record("r2"))
    store.writer.execute("INSERT INTO no_such_table VALUES (1)")
    store.after_commit(lambda: calls.append("failed"))
    with pytest.raises(Unavailable):
        await store.commit()
    assert calls == ["committed"]
    await store.close()
    assert calls == ["committed"], "a failed batch's callbacks never run"


async def test_work_a_commit_releases_joins_the_next_batch_while_other_writes_wait(
    store: SqliteStore,
) -> None:
    # A diamond's first step ends and its dependents start: the step's task
    # resumes once its attempt is durable (one turn), records its end and
    # launches the next step's task, which records its attempt (the turn
    # after). Under load other runs' writes have set the writer's wake
    # already; taken at once, the next batch held the end alone and the
    # dependents' attempts waited a commit more (9 sequential commits per
    # diamond instead of 5 in W4).
    writer = store.writer
    batch_of: dict[str, int] = {}

    def put(run_id: str) -> None:
        store.put_run(run_record(run_id))
        batch_of[run_id] = writer.batch_id

    async def next_step() -> None:
        put("next-step-started")
        await store.commit()

    put("step-started")
    started = writer.commit()
    taken = writer.batch_id
    while writer.batch_id == taken:  # the batch is on its way to the database
        await asyncio.sleep(0)
    put("another-run")  # sets the wake before the batch settles
    await started
    put("step-ended")
    launched = asyncio.create_task(next_step())
    await launched
    assert batch_of["step-ended"] == batch_of["next-step-started"]
    assert batch_of["another-run"] == batch_of["step-ended"]
    assert batch_of["step-started"] < batch_of["step-ended"]
