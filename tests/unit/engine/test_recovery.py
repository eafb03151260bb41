"""recover(): every unfinished run of a real store is handed to `resume`
once, oldest first, across batches; a run whose resumption raises is logged
and skipped without stopping the others; closing stops it."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from podium.core.model import RunRecord, RunView, StepRecord
from podium.core.states import RunState
from podium.engine.recovery import recover
from podium.store.sqlite.store import SqliteStore

T0 = 1_700_000_000.0
RUNS = 23
BATCH = 5  # several batches, the last one short


def run_record(run_id: str, create_time: float, state: RunState = RunState.RUNNING) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        workflow_id="w",
        workflow_version=1,
        state=state,
        input={},
        create_time=create_time,
        end_time=create_time + 1 if state.is_final else None,
    )


class ObservedStore(SqliteStore):
    """The real store, counting the batch reads recovery issues (and failing
    the one numbered `fail_read`)."""

    reads = 0
    fail_read = 0

    async def unfinished_runs(
        self, limit: int, *, after: tuple[float, str] | None = None
    ) -> list[RunView]:
        self.reads += 1
        if self.reads == self.fail_read:
            raise OSError("disk I/O error")
        return await super().unfinished_runs(limit, after=after)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ObservedStore]:
    opened = ObservedStore(str(tmp_path / "podium.db"))
    await opened.open()
    try:
        for i in range(RUNS):
            opened.put_run(run_record(f"run-{i:02}", T0 + i))
            opened.put_step(f"run-{i:02}", StepRecord(step_id="only", agent="echo", position=0))
        opened.put_run(run_record("done", T0 + 0.5, RunState.SUCCEEDED))
        await opened.commit()
        yield opened
    finally:
        await opened.close()


async def test_every_unfinished_run_is_resumed_once_oldest_first(store: SqliteStore) -> None:
    resumed: list[str] = []

    async def resume(view: RunView) -> None:
        assert [step.step_id for step in view.steps] == ["only"]
        resumed.append(view.run.run_id)

    count = await recover(store, resume, lambda: False, batch=BATCH)

    assert resumed == [f"run-{i:02}" for i in range(RUNS)]
    assert count == RUNS


async def test_a_run_that_fails_to_resume_is_logged_and_skipped(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    resumed: list[str] = []

    async def resume(view: RunView) -> None:
        if view.run.run_id in ("run-04", "run-05"):  # the last of a batch, the first of the next
            raise RuntimeError("its workflow is broken")
        resumed.append(view.run.run_id)

    with caplog.at_level(logging.ERROR, logger="podium.engine"):
        await recover(store, resume, lambda: False, batch=BATCH)

    assert resumed == [f"run-{i:02}" for i in range(RUNS) if i not in (4, 5)]
    failed = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert failed == ["could not resume run run-04", "could not resume run run-05"]


async def test_closing_stops_recovery_before_the_next_run(store: SqliteStore) -> None:
    resumed: list[str] = []

    async def resume(view: RunView) -> None:
        resumed.append(view.run.run_id)

    await recover(store, resume, lambda: len(resumed) >= 7, batch=BATCH)

    assert resumed == [f"run-{i:02}" for i in range(7)]


async def test_prepare_sees_each_batch_before_its_runs_are_resumed(store: SqliteStore) -> None:
    order: list[str] = []

    async def prepare(views: list[RunView]) -> None:
        order.append("prepare " + ",".join(view.run.run_id[-2:] for view in views))

    async def resume(view: RunView) -> None:
        order.append(view.run.run_id[-2:])

    await recover(store, resume, lambda: False, batch=BATCH, prepare=prepare)

    expected: list[str] = []
    for first in range(0, RUNS, BATCH):
        batch = [f"{i:02}" for i in range(first, min(first + BATCH, RUNS))]
        expected += ["prepare " + ",".join(batch), *batch]
    assert order == expected


async def test_a_failed_prepare_is_logged_and_its_runs_still_resume(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    resumed: list[str] = []

    async def prepare(views: list[RunView]) -> None:
        if views[0].run.run_id == "run-05":
            raise RuntimeError("the read failed")

    async def resume(view: RunView) -> None:
        resumed.append(view.run.run_id)

    with caplog.at_level(logging.ERROR, logger="podium.engine"):
        await recover(store, resume, lambda: False, batch=BATCH, prepare=prepare)

    assert resumed == [f"run-{i:02}" for i in range(RUNS)]
    failed = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert failed == ["could not read ahead for 5 runs; resuming them one by one"]


async def test_the_next_batch_is_read_while_this_one_resumes(store: ObservedStore) -> None:
    # Reading and resuming overlap: a restart over 1,000 runs no longer
    # waits for each batch's read between two batches' resumptions.
    reads_when_resumed: dict[str, int] = {}

    async def resume(view: RunView) -> None:
        reads_when_resumed[view.run.run_id] = store.reads

    await recover(store, resume, lambda: False, batch=BATCH)

    batches = -(-RUNS // BATCH)
    assert [reads_when_resumed[f"run-{i:02}"] for i in range(0, RUNS, BATCH)] == [
        batch + 2 for batch in range(batches)
    ]
    assert store.reads == batches + 1  # the last read finds nothing


async def test_a_failed_read_ahead_fails_recovery_after_the_batch_before(
    store: ObservedStore,
) -> None:
    resumed: list[str] = []

    async def resume(view: RunView) -> None:
        resumed.append(view.run.run_id)

    store.fail_read = 3
    with pytest.raises(OSError, match="disk I/O error"):
        await recover(store, resume, lambda: False, batch=BATCH)
    assert resumed == [f"run-{i:02}" for i in range(2 * BATCH)]


async def test_closing_leaves_no_read_behind(
    store: ObservedStore, caplog: pytest.LogCaptureFixture
) -> None:
    resumed: list[str] = []

    async def resume(view: RunView) -> None:
        resumed.append(view.run.run_id)

    store.fail_read = 2  # the read ahead fails, and nobody awaits it
    with caplog.at_level(logging.ERROR):
        await recover(store, resume, lambda: len(resumed) >= 3, batch=BATCH)
        await asyncio.sleep(0)
        gc.collect()  # a task whose exception nobody retrieved says so when collected
    assert resumed == ["run-00", "run-01", "run-02"]
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
