"""The WorkflowStore port (podium.engine.ports): versioned workflow
definitions, soft-deleted so that runs keep the version they are pinned to.
Every test runs against every backend of conftest.BACKENDS."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podium.engine.ports import WorkflowStore

from .conftest import FreshStores, StoreFactory
from .records import T0, spec


async def test_versions_count_from_one_per_workflow(workflow_store: WorkflowStore) -> None:
    assert await workflow_store.create_workflow("invoices", spec("v1"), T0) == 1
    assert await workflow_store.create_workflow("invoices", spec("v2"), T0 + 1) == 2
    # Another workflow has its own numbering.
    assert await workflow_store.create_workflow("payroll", spec("p1"), T0 + 2) == 1
    assert await workflow_store.create_workflow("invoices", spec("v3"), T0 + 3) == 3


async def test_a_stored_version_round_trips(workflow_store: WorkflowStore) -> None:
    stored = spec("with a ceiling", max_cost=Decimal("0.000000001"))
    version = await workflow_store.create_workflow("invoices", stored, T0 + 0.5)

    found = await workflow_store.get_workflow("invoices", version)

    assert found is not None
    assert (found.workflow_id, found.version, found.create_time) == ("invoices", 1, T0 + 0.5)
    assert found.spec == stored


async def test_version_zero_is_the_latest_and_a_number_is_that_version(
    workflow_store: WorkflowStore,
) -> None:
    for description in ("first", "second", "third"):
        await workflow_store.create_workflow("invoices", spec(description), T0)

    latest = await workflow_store.get_workflow("invoices")
    first = await workflow_store.get_workflow("invoices", 1)
    second = await workflow_store.get_workflow("invoices", 2)

    assert latest is not None and (latest.version, latest.spec.description) == (3, "third")
    assert first is not None and (first.version, first.spec.description) == (1, "first")
    assert second is not None and (second.version, second.spec.description) == (2, "second")


async def test_unknown_workflows_and_versions_are_none(workflow_store: WorkflowStore) -> None:
    await workflow_store.create_workflow("invoices", spec(), T0)

    assert await workflow_store.get_workflow("nope") is None
    assert await workflow_store.get_workflow("invoices", 2) is None
    assert await workflow_store.get_workflow_version_any("nope", 1) is None
    assert await workflow_store.get_workflow_version_any("invoices", 2) is None


async def test_a_created_workflow_is_durable_when_create_returns(
    backend: StoreFactory, tmp_path: Path
) -> None:
    async with backend(tmp_path) as first:
        if not first.shared:
            pytest.skip("a private database has no second store to look from")
        # No commit(): create_workflow itself must have made it durable.
        await first.runs.create_workflow("invoices", spec("durable"), T0)
        async with backend(tmp_path) as second:
            found = await second.runs.get_workflow("invoices")
    assert found is not None and found.spec.description == "durable"


async def test_concurrent_creates_of_one_workflow_return_distinct_versions(
    workflow_store: WorkflowStore,
) -> None:
    versions = await asyncio.gather(
        workflow_store.create_workflow("invoices", spec("a"), T0),
        workflow_store.create_workflow("invoices", spec("b"), T0),
    )

    assert sorted(versions) == [1, 2]
    # Each caller got the number of the version it stored.
    for version, description in zip(versions, ("a", "b"), strict=True):
        found = await workflow_store.get_workflow("invoices", version)
        assert found is not None and found.spec.description == description


async def test_delete_hides_every_version_from_get_and_list(
    workflow_store: WorkflowStore,
) -> None:
    await workflow_store.create_workflow("invoices", spec("v1"), T0)
    await workflow_store.create_workflow("invoices", spec("v2"), T0)
    await workflow_store.create_workflow("payroll", spec(), T0)

    assert await workflow_store.delete_workflow("invoices") is True

    assert await workflow_store.get_workflow("invoices") is None
    assert await workflow_store.get_workflow("invoices", 1) is None
    assert await workflow_store.get_workflow("invoices", 2) is None
    listed = await workflow_store.list_workflows(10)
    assert [w.workflow_id for w in listed] == ["payroll"]


async def test_a_deleted_workflow_still_resolves_its_versions_for_runs(
    workflow_store: WorkflowStore,
) -> None:
    await workflow_store.create_workflow("invoices", spec("v1"), T0)
    await workflow_store.create_workflow("invoices", spec("v2"), T0 + 1)
    await workflow_store.delete_workflow("invoices")

    first = await workflow_store.get_workflow_version_any("invoices", 1)
    second = await workflow_store.get_workflow_version_any("invoices", 2)

    assert first is not None and (first.version, first.spec.description) == (1, "v1")
    assert second is not None and (second.version, second.create_time) == (2, T0 + 1)


async def test_delete_tells_whether_the_workflow_existed(workflow_store: WorkflowStore) -> None:
    await workflow_store.create_workflow("invoices", spec(), T0)

    assert await workflow_store.delete_workflow("nope") is False
    assert await workflow_store.delete_workflow("invoices") is True
    # Already deleted: nothing live to delete any more.
    assert await workflow_store.delete_workflow("invoices") is False


async def test_recreating_a_deleted_workflow_never_reuses_a_version(
    workflow_store: WorkflowStore,
) -> None:
    # Runs pin (workflow_id, version): a number reused after a delete would
    # give old runs a different definition.
    await workflow_store.create_workflow("invoices", spec("old"), T0)
    await workflow_store.delete_workflow("invoices")

    version = await workflow_store.create_workflow("invoices", spec("new"), T0 + 1)

    assert version > 1
    latest = await workflow_store.get_workflow("invoices")
    assert latest is not None and latest.spec.description == "new"
    old = await workflow_store.get_workflow_version_any("invoices", 1)
    assert old is not None and old.spec.description == "old"


async def test_list_gives_the_latest_version_of_each_workflow_by_id(
    workflow_store: WorkflowStore,
) -> None:
    for workflow_id, versions in (("charlie", 1), ("alpha", 3), ("bravo", 2)):
        for number in range(1, versions + 1):
            await workflow_store.create_workflow(workflow_id, spec(f"v{number}"), T0)

    listed = await workflow_store.list_workflows(10)

    assert [(w.workflow_id, w.version, w.spec.description) for w in listed] == [
        ("alpha", 3, "v3"),
        ("bravo", 2, "v2"),
        ("charlie", 1, "v1"),
    ]


async def test_list_pages_with_a_limit_and_after_id(workflow_store: WorkflowStore) -> None:
    for workflow_id in ("d", "b", "a", "c", "e"):
        await workflow_store.create_workflow(workflow_id, spec(), T0)

    first = await workflow_store.list_workflows(2)
    second = await workflow_store.list_workflows(2, after_id=first[-1].workflow_id)
    # `after_id` need not be a stored id: the page starts after it in id order.
    between = await workflow_store.list_workflows(10, after_id="bb")
    last = await workflow_store.list_workflows(10, after_id="e")

    assert [w.workflow_id for w in first] == ["a", "b"]
    assert [w.workflow_id for w in second] == ["c", "d"]
    assert [w.workflow_id for w in between] == ["c", "d", "e"]
    assert last == []


# Workflow ids from a small alphabet, so that prefixes and near-neighbours occur.
_workflow_ids = st.text(alphabet="ab-_0Zé", min_size=1, max_size=4)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    versions=st.dictionaries(_workflow_ids, st.integers(1, 3), max_size=12),
    deleted=st.sets(_workflow_ids, max_size=4),
    page_size=st.integers(1, 5),
)
async def test_paging_the_list_visits_each_live_workflow_once_in_id_order(
    fresh_stores: FreshStores, versions: dict[str, int], deleted: set[str], page_size: int
) -> None:
    async with fresh_stores() as stores:
        store: WorkflowStore = stores.runs
        for workflow_id, count in versions.items():
            for _ in range(count):
                await store.create_workflow(workflow_id, spec(), T0)
        for workflow_id in deleted:
            await store.delete_workflow(workflow_id)

        seen: list[tuple[str, int]] = []
        after = ""
        while True:
            page = await store.list_workflows(page_size, after_id=after)
            assert len(page) <= page_size
            seen += [(w.workflow_id, w.version) for w in page]
            if len(page) < page_size:
                break
            after = page[-1].workflow_id

    live = sorted((w, n) for w, n in versions.items() if w not in deleted)
    # Ids compare as strings do in Python (code point order); a backend whose
    # collation orders them otherwise would break page tokens.
    assert seen == live
