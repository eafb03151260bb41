"""The RunStore port's RerunRuns records (podium.engine.ports): what a retried
RerunRuns reads back, against every backend of conftest.BACKENDS, through the
port only."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium.core.model import RerunBatchRecord
from podium.core.states import RunState
from podium.engine.ports import RunStore

from .conftest import StoreFactory
from .records import T0, run_record


async def test_a_rerun_batch_is_read_back_by_tenant_and_request_id(run_store: RunStore) -> None:
    batch = RerunBatchRecord("acme", "req-1", "hash-1", ["r3", "r1", "r2"], T0)
    run_store.put_rerun_batch(batch)
    run_store.put_rerun_batch(RerunBatchRecord("other", "req-1", "hash-2", [], T0 + 1))
    await run_store.commit()
    # The originals keep their order (newest first, as the filter chose them).
    assert await run_store.get_rerun_batch("req-1", tenant="acme") == batch
    assert await run_store.get_rerun_batch("req-1", tenant="other") == RerunBatchRecord(
        "other", "req-1", "hash-2", [], T0 + 1
    )
    assert await run_store.get_rerun_batch("req-2", tenant="acme") is None
    assert await run_store.get_rerun_batch("req-1", tenant="nobody") is None


async def test_the_first_record_of_a_request_id_stays(run_store: RunStore) -> None:
    # Two calls that both missed the record: the second's originals must not
    # replace those the first started re-running.
    run_store.put_rerun_batch(RerunBatchRecord("acme", "req", "h", ["a"], T0))
    await run_store.commit()
    run_store.put_rerun_batch(RerunBatchRecord("acme", "req", "h", ["b", "c"], T0 + 5))
    await run_store.commit()
    found = await run_store.get_rerun_batch("req", tenant="acme")
    assert found is not None and (found.originals, found.time) == (["a"], T0)


async def test_a_rerun_batch_is_durable_once_committed(
    backend: StoreFactory, tmp_path: Path
) -> None:
    async with backend(tmp_path) as first:
        if not first.shared:
            pytest.skip("a private database has no second store to look from")
        first.runs.put_rerun_batch(RerunBatchRecord("t", "r\x00id", "h", ["x"], T0))
        await first.runs.commit()
        async with backend(tmp_path) as second:
            found = await second.runs.get_rerun_batch("r\x00id", tenant="t")
    assert found is not None and found.originals == ["x"]


async def test_a_rerun_batch_is_deleted_once_old_and_none_of_its_originals_exists(
    run_store: RunStore,
) -> None:
    # Retention's rule (podium.engine.retention): a record goes once it was made
    # before the cutoff and every run it names is deleted; while one exists, a
    # retried RerunRuns must still re-run the same originals.
    for run_id in ("kept", "gone-1", "gone-2"):
        run_store.put_run(run_record(run_id, state=RunState.SUCCEEDED))
    batches = {
        "one-left": RerunBatchRecord("acme", "one-left", "h", ["gone-1", "kept"], T0),
        "all-gone": RerunBatchRecord("acme", "all-gone", "h", ["gone-1", "gone-2"], T0),
        "empty": RerunBatchRecord("acme", "empty", "h", [], T0 + 1),
        "recent": RerunBatchRecord("acme", "recent", "h", ["gone-2"], T0 + 10),
        "other-tenant": RerunBatchRecord("other", "all-gone", "h", ["kept"], T0),
    }
    for batch in batches.values():
        run_store.put_rerun_batch(batch)
    await run_store.commit()
    # Every original exists; a record naming none goes once old enough.
    assert await run_store.delete_rerun_batches_before(T0 + 1) == 0
    assert await run_store.delete_rerun_batches_before(T0 + 10) == 1
    assert await run_store.get_rerun_batch("empty", tenant="acme") is None

    assert await run_store.delete_runs(["gone-1", "gone-2"]) == 2
    assert await run_store.delete_rerun_batches_before(T0 + 10) == 1
    assert await run_store.get_rerun_batch("all-gone", tenant="acme") is None
    # Not yet older than the cutoff, or one original left: kept.
    assert await run_store.get_rerun_batch("recent", tenant="acme") == batches["recent"]
    assert await run_store.get_rerun_batch("one-left", tenant="acme") == batches["one-left"]
    assert await run_store.get_rerun_batch("all-gone", tenant="other") == batches["other-tenant"]
    assert await run_store.delete_rerun_batches_before(T0 + 10) == 0

    assert await run_store.delete_runs(["kept"]) == 1
    assert await run_store.delete_rerun_batches_before(T0 + 11) == 3
    for tenant, request_id in (("acme", "recent"), ("acme", "one-left"), ("other", "all-gone")):
        assert await run_store.get_rerun_batch(request_id, tenant=tenant) is None
