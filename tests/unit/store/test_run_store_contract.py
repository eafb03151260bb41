"""The RunStore port (podium.engine.ports): fire-and-forget writes that a
backend may batch, commit() and after_commit callbacks, the reads the engine
and the servicers make, the step cache, and retention. Every test runs
against every backend of conftest.BACKENDS, through the port only.

The port lets a backend commit submitted writes whenever it likes (the engine
relies on it: events reach subscribers from after_commit callbacks that no
one awaits), so no test asserts that a write is invisible before commit();
what is asserted is that it is readable once committed, and that readers
never see part of a batch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podium.core.failures import Failure
from podium.core.model import Event, RunRecord, Usage
from podium.core.states import AttemptState, EventType, RunState, StepState
from podium.engine.ports import RunStore

from .conftest import FreshStores
from .records import (
    NESTED_OUTPUT,
    T0,
    attempt_record,
    complete_attempt_record,
    complete_event,
    complete_run_record,
    complete_step_record,
    event,
    item_record,
    run_record,
    step_record,
)

# A ceiling for what a backend may take to commit on its own: generous, so
# that a slow machine does not fail the suite, and finite, so that a backend
# that never commits does.
COMMIT_TIMEOUT = 5.0

FINAL_STATES = [state for state in RunState if state.is_final]
UNFINISHED_STATES = [RunState.PENDING, RunState.RUNNING, RunState.WAITING_APPROVAL]


async def eventually(condition: Callable[[], bool]) -> None:
    """Waits until `condition` holds, failing after COMMIT_TIMEOUT."""
    async with asyncio.timeout(COMMIT_TIMEOUT):
        while not condition():
            await asyncio.sleep(0.001)


def shuffled(values: list[Any], seed: int = 7) -> list[Any]:
    """The same values in another order (fixed, so that a failure reproduces):
    what the store returns must not depend on the order of the writes."""
    copy = list(values)
    random.Random(seed).shuffle(copy)
    return copy


# -- writes become readable when committed -------------------------------------------


async def test_a_committed_run_round_trips_every_field(run_store: RunStore) -> None:
    run = complete_run_record("r1")
    run_store.put_run(run)
    await run_store.commit()

    view = await run_store.get_run("r1")

    assert view is not None
    assert view.run == run
    assert view.steps == []
    # Dataclass equality would let an int pass for an enum and a float for
    # a Decimal; the engine relies on the real types (state.is_final, money).
    assert type(view.run.state) is RunState
    assert type(view.run.cost) is Decimal and type(view.run.max_cost) is Decimal


async def test_a_run_with_only_defaults_round_trips(run_store: RunStore) -> None:
    # The other extreme: every optional field unset (no output, failure,
    # times, request id, labels, usage, cost or ceiling).
    run = RunRecord("bare", "invoices", 1, RunState.PENDING, {}, T0)
    run_store.put_run(run)
    await run_store.commit()

    view = await run_store.get_run("bare")

    assert view is not None and view.run == run


async def test_a_run_s_input_text_is_stored_as_given_and_read_back_with_it(
    run_store: RunStore,
) -> None:
    # The engine encodes a run's input once (StartRun) and hands the text on:
    # the store writes that text, and a run read back carries the text read.
    run = RunRecord("given", "invoices", 1, RunState.PENDING, {"n": 1}, T0)
    run.input_json = '{"n":1}'
    run_store.put_run(run)
    plain = RunRecord("encoded", "invoices", 1, RunState.PENDING, {"s": "é", "f": 2.5}, T0)
    run_store.put_run(plain)
    await run_store.commit()

    given = await run_store.get_run("given")
    encoded = await run_store.get_run("encoded")

    assert given is not None and given.run.input == {"n": 1}
    assert given.run.input_json == '{"n":1}'
    assert encoded is not None and encoded.run.input == {"s": "é", "f": 2.5}
    assert encoded.run.input_json == '{"s":"é","f":2.5}'


async def test_unknown_runs_read_as_absent(run_store: RunStore) -> None:
    assert await run_store.get_run("nope") is None
    assert await run_store.run_status("nope") is None
    assert await run_store.last_sequence("nope") == 0
    assert await run_store.read_events("nope", 0, 10) == []
    assert await run_store.items_of("nope", "step") == []


async def test_steps_come_back_in_position_order_with_their_attempts_grouped(
    run_store: RunStore,
) -> None:
    run_store.put_run(run_record("r1"))
    steps = [complete_step_record(step_id, position) for position, step_id in enumerate("cab")]
    attempts = {
        # Fan-out attempts: per item, then per attempt number.
        "c": [complete_attempt_record(n, item=i) for i, n in [(1, 1), (0, 2), (0, 1)]],
        "a": [attempt_record(2), attempt_record(1)],
        "b": [],
    }
    for step in shuffled(steps):
        run_store.put_step("r1", step)
    for step_id, records in attempts.items():
        for attempt in records:
            run_store.put_attempt("r1", step_id, attempt)
    await run_store.commit()

    view = await run_store.get_run("r1")

    assert view is not None
    assert [step.step_id for step in view.steps] == ["c", "a", "b"]
    for step, read in zip(steps, view.steps, strict=True):
        expected = sorted(attempts[step.step_id], key=lambda a: (a.item, a.number))
        assert read == dataclasses.replace(step, attempts=expected)
    assert [(a.item, a.number) for a in view.steps[0].attempts] == [(0, 1), (0, 2), (1, 1)]
    assert type(view.steps[0].state) is StepState
    assert type(view.steps[0].attempts[0].state) is AttemptState


async def test_attempts_and_steps_stay_with_their_own_run(run_store: RunStore) -> None:
    for run_id in ("r1", "r2"):
        run_store.put_run(run_record(run_id))
        run_store.put_step(run_id, step_record("same-step", 0))
    run_store.put_attempt("r1", "same-step", attempt_record(1))
    run_store.put_attempt("r2", "same-step", attempt_record(1, start_time=T0 + 5))
    run_store.put_attempt("r2", "same-step", attempt_record(2, start_time=T0 + 6))
    await run_store.commit()

    first = await run_store.get_run("r1")
    second = await run_store.get_run("r2")

    assert first is not None and second is not None
    assert [a.start_time for a in first.steps[0].attempts] == [T0]
    assert [a.start_time for a in second.steps[0].attempts] == [T0 + 5, T0 + 6]


async def test_a_committed_event_round_trips_every_field(run_store: RunStore) -> None:
    written = complete_event("r1", 1)
    run_store.put_event(written)
    await run_store.commit()

    [read] = await run_store.read_events("r1", 0, 10)

    assert read == written
    assert type(read.type) is EventType and type(read.run_state) is RunState
    assert type(read.step_state) is StepState and type(read.cost) is Decimal


async def test_a_large_output_shared_by_a_step_and_its_events_round_trips(
    run_store: RunStore,
) -> None:
    # Encoded once and reused by the step's row and its events' (spliced into
    # each event's body): every record reads back whole, each with its own fields.
    output = {"items": [{"k": i, "s": "é" * 20} for i in range(5_000)], "n": 2.5}
    run_store.put_run(run_record("r1"))
    step = step_record("big", 0, state=StepState.SUCCEEDED)
    step.output = output
    run_store.put_step("r1", step)
    first = dataclasses.replace(complete_event("r1", 1), output=output)
    second = dataclasses.replace(event("r1", 2), output=output)
    run_store.put_event(first)
    run_store.put_event(second)
    await run_store.commit()

    assert await run_store.read_events("r1", 0, 10) == [first, second]
    view = await run_store.get_run("r1")
    assert view is not None
    [read_step] = view.steps
    assert read_step.output == output


async def test_an_event_with_only_defaults_round_trips(run_store: RunStore) -> None:
    # Unset optional fields must come back unset: None stays None (not zero),
    # item stays -1 (0 is a real item), progress and attempt stay 0.
    written = event("r1", 1)
    run_store.put_event(written)
    await run_store.commit()

    assert await run_store.read_events("r1", 0, 10) == [written]


async def test_event_fields_that_look_empty_but_are_set_round_trip(run_store: RunStore) -> None:
    written = dataclasses.replace(
        event("r1", 1),
        item=0,
        cost=Decimal(0),
        usage=Usage(),
        retry_delay=0.0,
        due_time=0.0,
        output={},
    )
    run_store.put_event(written)
    await run_store.commit()

    [read] = await run_store.read_events("r1", 0, 10)

    assert read == written
    assert read.cost is not None and read.usage is not None
    assert read.retry_delay is not None and read.due_time is not None


async def test_committed_items_come_back_by_index_for_their_step_only(
    run_store: RunStore,
) -> None:
    items = [item_record(2), item_record(0, succeeded=False), item_record(1)]
    for item in items:
        run_store.put_item("r1", "each", item)
    run_store.put_item("r1", "other-step", item_record(0))
    run_store.put_item("r2", "each", item_record(5))
    await run_store.commit()

    read = await run_store.items_of("r1", "each")

    assert read == sorted(items, key=lambda item: item.index)


async def test_an_item_submitted_alone_is_committed(run_store: RunStore) -> None:
    run_store.put_item("r1", "each", item_record(0))
    # Let a backend that commits in the background take this write on its own,
    # as it does when an item is the only write of a moment.
    await asyncio.sleep(0.05)
    await run_store.commit()

    assert await run_store.items_of("r1", "each") == [item_record(0)]


async def test_token_counts_round_trip_when_calls_and_io_tokens_are_zero(
    run_store: RunStore,
) -> None:
    usage = Usage(cached_input_tokens=5, cache_write_tokens=6, reasoning_tokens=7)
    run_store.put_run(dataclasses.replace(run_record("r1"), usage=usage))
    await run_store.commit()

    view = await run_store.get_run("r1")

    assert view is not None and view.run.usage == usage


# -- repeated puts of one key: the last one wins --------------------------------------


@pytest.fixture(params=[False, True], ids=["same-batch", "across-batches"])
def commit_between(request: pytest.FixtureRequest) -> bool:
    """Whether the two puts of a key are committed apart (an update of a stored
    row) or together (two writes of one batch): backends may handle them in
    different places."""
    flag: bool = request.param
    return flag


async def test_the_last_put_of_a_run_wins(run_store: RunStore, commit_between: bool) -> None:
    run_store.put_run(run_record("r1", state=RunState.RUNNING))
    if commit_between:
        await run_store.commit()
    last = dataclasses.replace(complete_run_record("r1"), state=RunState.SUCCEEDED)
    run_store.put_run(last)
    await run_store.commit()

    view = await run_store.get_run("r1")

    assert view is not None and view.run == last
    assert [run.run_id for run in await run_store.list_runs(10)] == ["r1"]


async def test_the_last_put_of_a_step_wins(run_store: RunStore, commit_between: bool) -> None:
    run_store.put_run(run_record("r1"))
    run_store.put_step("r1", step_record("s", 0, state=StepState.RUNNING))
    if commit_between:
        await run_store.commit()
    last = complete_step_record("s", 0)
    run_store.put_step("r1", last)
    await run_store.commit()

    view = await run_store.get_run("r1")

    assert view is not None and view.steps == [last]


async def test_the_last_put_of_an_attempt_wins(run_store: RunStore, commit_between: bool) -> None:
    run_store.put_run(run_record("r1"))
    run_store.put_step("r1", step_record("s", 0))
    run_store.put_attempt("r1", "s", attempt_record(1, item=3))
    if commit_between:
        await run_store.commit()
    last = complete_attempt_record(1, item=3)
    run_store.put_attempt("r1", "s", last)
    await run_store.commit()

    view = await run_store.get_run("r1")

    assert view is not None and view.steps[0].attempts == [last]


async def test_the_last_put_of_an_item_wins(run_store: RunStore, commit_between: bool) -> None:
    run_store.put_item("r1", "each", item_record(0, succeeded=False))
    if commit_between:
        await run_store.commit()
    run_store.put_item("r1", "each", item_record(0))
    await run_store.commit()

    assert await run_store.items_of("r1", "each") == [item_record(0)]


async def test_the_last_put_of_a_cache_entry_wins(
    run_store: RunStore, commit_between: bool
) -> None:
    run_store.put_cache("key", {"old": True}, T0 + 10)
    if commit_between:
        await run_store.commit()
    # The new entry replaces the output and extends the expiry.
    run_store.put_cache("key", {"new": True}, T0 + 100)
    await run_store.commit()

    assert await run_store.get_cache("key", T0 + 50) == (True, {"new": True})


# -- commit, after_commit and batch_id -------------------------------------------------


async def test_writes_are_readable_once_their_after_commit_callback_has_run(
    run_store: RunStore,
) -> None:
    committed = asyncio.Event()
    run_store.put_run(run_record("r1"))
    run_store.put_event(event("r1", 1))
    run_store.after_commit(committed.set)

    # No commit(): the backend must commit on its own, as the engine publishes
    # events from after_commit callbacks that nothing awaits.
    async with asyncio.timeout(COMMIT_TIMEOUT):
        await committed.wait()

    assert await run_store.get_run("r1") is not None
    assert await run_store.last_sequence("r1") == 1


async def test_after_commit_callbacks_run_once_in_registration_order(
    run_store: RunStore,
) -> None:
    calls: list[str] = []
    run_store.after_commit(lambda: calls.append("first"))
    run_store.put_run(run_record("r1"))
    run_store.after_commit(lambda: calls.append("second"))
    await run_store.commit()
    run_store.put_event(event("r1", 1))
    run_store.after_commit(lambda: calls.append("third"))
    await run_store.commit()

    await eventually(lambda: len(calls) >= 3)
    # Later commits must not run them again.
    run_store.put_event(event("r1", 2))
    await run_store.commit()
    await run_store.commit()

    assert calls == ["first", "second", "third"]


async def test_a_callback_waits_for_every_write_of_its_batch_id(run_store: RunStore) -> None:
    # The engine's recorder registers one callback on the first event of a
    # batch and publishes from it every event submitted under the same
    # batch_id, later ones included: they must all be committed by then.
    run_store.put_run(run_record("r1"))
    run_store.put_event(event("r1", 1))
    batch = run_store.batch_id
    fired = asyncio.Event()
    run_store.after_commit(fired.set)
    run_store.put_event(event("r1", 2))
    run_store.put_step("r1", step_record("s", 0))
    assert run_store.batch_id == batch, "no await in between: still the same batch"

    async with asyncio.timeout(COMMIT_TIMEOUT):
        await fired.wait()

    assert await run_store.last_sequence("r1") == 2
    view = await run_store.get_run("r1")
    assert view is not None and [step.step_id for step in view.steps] == ["s"]


async def test_batch_id_changes_once_a_batch_is_taken(run_store: RunStore) -> None:
    first = run_store.batch_id
    run_store.put_run(run_record("r1"))
    # Submitting does not take the batch.
    assert run_store.batch_id == first

    await run_store.commit()
    second = run_store.batch_id
    run_store.put_run(run_record("r2"))
    await run_store.commit()

    assert second != first
    assert run_store.batch_id != second


async def test_readers_see_a_batch_entirely_or_not_at_all(run_store: RunStore) -> None:
    events = 200
    observed: list[int] = []
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            observed.append(await run_store.last_sequence("r1"))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)
    for sequence in range(1, events + 1):
        run_store.put_event(event("r1", sequence))
    await run_store.commit()
    done.set()
    await watcher
    observed.append(await run_store.last_sequence("r1"))

    assert set(observed) <= {0, events}
    assert observed[-1] == events


# -- run lookups -----------------------------------------------------------------------


async def test_run_status_is_the_state_and_the_last_event_sequence(run_store: RunStore) -> None:
    run = dataclasses.replace(run_record("r1", state=RunState.WAITING_APPROVAL), last_sequence=3)
    run_store.put_run(run)
    for sequence in (1, 2, 3):
        run_store.put_event(event("r1", sequence))
    await run_store.commit()

    status = await run_store.run_status("r1")

    assert status == (RunState.WAITING_APPROVAL, 3)
    assert status is not None and type(status[0]) is RunState


async def test_a_run_is_found_by_its_request_id(run_store: RunStore) -> None:
    wanted = complete_run_record("r1")
    run_store.put_run(wanted)
    run_store.put_run(run_record("r2", request_id="another-request"))
    run_store.put_run(run_record("r3"))
    await run_store.commit()

    assert await run_store.find_run_by_request_id(wanted.request_id) == wanted
    assert await run_store.find_run_by_request_id("unknown-request") is None


async def test_a_run_without_request_id_is_not_found_by_the_empty_id(
    run_store: RunStore,
) -> None:
    # "" means "no request id": matching it would make unrelated StartRun
    # calls look like retries of one another.
    run_store.put_run(run_record("r1"))
    await run_store.commit()

    assert await run_store.find_run_by_request_id("") is None


# -- list_runs -------------------------------------------------------------------------


async def test_runs_are_listed_newest_first_then_by_run_id(run_store: RunStore) -> None:
    runs = [
        run_record("b", create_time=T0 + 1),
        run_record("a", create_time=T0 + 1),
        run_record("c", create_time=T0 + 1),
        run_record("z", create_time=T0),
        run_record("m", create_time=T0 + 2),
    ]
    for run in shuffled(runs):
        run_store.put_run(run)
    await run_store.commit()

    listed = await run_store.list_runs(10)

    # Same create_time: run_id descending, the same direction as the time.
    assert [run.run_id for run in listed] == ["m", "c", "b", "a", "z"]


async def test_listing_pages_after_the_key_of_the_last_run(run_store: RunStore) -> None:
    for run_id, offset in [("a", 1), ("b", 1), ("c", 1), ("d", 0), ("e", 2)]:
        run_store.put_run(run_record(run_id, create_time=T0 + offset))
    await run_store.commit()

    first = await run_store.list_runs(2)
    second = await run_store.list_runs(2, after=(first[-1].create_time, first[-1].run_id))
    third = await run_store.list_runs(2, after=(second[-1].create_time, second[-1].run_id))
    # The key need not be a stored run: the page starts after it in list order.
    from_a_key = await run_store.list_runs(10, after=(T0 + 1, "bb"))

    assert [run.run_id for run in first] == ["e", "c"]
    assert [run.run_id for run in second] == ["b", "a"]
    assert [run.run_id for run in third] == ["d"]
    assert [run.run_id for run in from_a_key] == ["b", "a", "d"]


async def test_listing_filters_by_workflow(run_store: RunStore) -> None:
    run_store.put_run(run_record("i1", workflow_id="invoices", create_time=T0))
    run_store.put_run(run_record("p1", workflow_id="payroll", create_time=T0 + 1))
    run_store.put_run(run_record("i2", workflow_id="invoices", create_time=T0 + 2))
    await run_store.commit()

    listed = await run_store.list_runs(10, workflow_id="invoices")

    assert [run.run_id for run in listed] == ["i2", "i1"]


async def test_listing_filters_by_parent_run(run_store: RunStore) -> None:
    parent = run_record("p", create_time=T0)
    children = [
        dataclasses.replace(
            run_record(f"c{i}", create_time=T0 + 1 + i), parent_run_id="p", parent_step_id="sub"
        )
        for i in range(2)
    ]
    other = dataclasses.replace(run_record("o", create_time=T0 + 5), parent_run_id="q", depth=1)
    for run in (parent, *children, other):
        run_store.put_run(run)
    await run_store.commit()

    listed = await run_store.list_runs(10, parent_run_id="p")
    everything = await run_store.list_runs(10)

    assert [(r.run_id, r.parent_run_id, r.parent_step_id) for r in listed] == [
        ("c1", "p", "sub"),
        ("c0", "p", "sub"),
    ]
    assert [r.run_id for r in everything] == ["o", "c1", "c0", "p"]
    assert everything[0].depth == 1
    assert await run_store.list_runs(10, parent_run_id="nobody") == []


async def test_listing_filters_by_any_of_several_states(run_store: RunStore) -> None:
    for offset, state in enumerate(RunState):
        run_store.put_run(run_record(state.name.lower(), state=state, create_time=T0 + offset))
    await run_store.commit()

    one = await run_store.list_runs(10, states=[RunState.FAILED])
    several = await run_store.list_runs(
        10, states={RunState.PENDING, RunState.SUCCEEDED, RunState.WAITING_APPROVAL}
    )

    assert [run.run_id for run in one] == ["failed"]
    assert [run.run_id for run in several] == ["waiting_approval", "succeeded", "pending"]


async def test_listing_requires_every_label_filter_to_match(run_store: RunStore) -> None:
    run_store.put_run(run_record("both", labels={"team": "billing", "env": "prod", "x": "1"}))
    run_store.put_run(run_record("team-only", labels={"team": "billing", "env": "dev"}))
    run_store.put_run(run_record("env-only", labels={"team": "payroll", "env": "prod"}))
    run_store.put_run(run_record("unlabelled"))
    run_store.put_run(run_record("unicode", labels={"team": "Zoë ✓"}))
    await run_store.commit()

    both = await run_store.list_runs(10, labels={"team": "billing", "env": "prod"})
    team = await run_store.list_runs(10, labels={"team": "billing"})
    unicode_value = await run_store.list_runs(10, labels={"team": "Zoë ✓"})
    no_filter = await run_store.list_runs(10, labels={})

    assert [run.run_id for run in both] == ["both"]
    assert sorted(run.run_id for run in team) == ["both", "team-only"]
    assert [run.run_id for run in unicode_value] == ["unicode"]
    assert len(no_filter) == 5


@pytest.mark.parametrize(
    "key",
    [
        "team",
        "app.kubernetes.io/name",
        "with space",
        "$[0]",
        "back\\slash",
        "",
        "équipe",
        'say "hi"',
    ],
)
async def test_a_label_filter_works_for_any_key(run_store: RunStore, key: str) -> None:
    # Label keys come from clients unvalidated: any string must filter.
    run_store.put_run(run_record("match", labels={key: "v"}))
    run_store.put_run(run_record("other-value", labels={key: "w"}))
    run_store.put_run(run_record("no-such-label", labels={"unrelated": "v"}))
    await run_store.commit()

    listed = await run_store.list_runs(10, labels={key: "v"})

    assert [run.run_id for run in listed] == ["match"]


async def test_listing_combines_filters_with_paging(run_store: RunStore) -> None:
    for number in range(8):
        run_store.put_run(
            run_record(
                f"r{number}",
                create_time=T0 + number,
                workflow_id="invoices" if number % 2 else "payroll",
                state=RunState.SUCCEEDED if number % 3 else RunState.FAILED,
                labels={"team": "billing"},
            )
        )
    await run_store.commit()
    filters: dict[str, Any] = {
        "workflow_id": "invoices",
        "states": [RunState.SUCCEEDED],
        "labels": {"team": "billing"},
    }

    first = await run_store.list_runs(2, **filters)
    rest = await run_store.list_runs(10, after=(first[-1].create_time, first[-1].run_id), **filters)

    # Odd numbers (invoices) not divisible by 3 (succeeded): 7, 5, 1.
    assert [run.run_id for run in first] == ["r7", "r5"]
    assert [run.run_id for run in rest] == ["r1"]


_run_ids = st.text(alphabet="abZ09-é", min_size=1, max_size=3)


@st.composite
def run_populations(draw: st.DrawFn) -> list[RunRecord]:
    run_ids = draw(st.lists(_run_ids, unique=True, max_size=25))
    return [
        run_record(
            run_id,
            # Few distinct times: ties on create_time are the interesting case.
            create_time=T0 + draw(st.integers(0, 3)),
            workflow_id=draw(st.sampled_from(["invoices", "payroll"])),
            state=draw(st.sampled_from(list(RunState))),
            labels=draw(
                st.dictionaries(st.sampled_from(["team", "env"]), st.sampled_from(["a", "b"]))
            ),
        )
        for run_id in run_ids
    ]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    runs=run_populations(),
    workflow_id=st.sampled_from(["", "invoices"]),
    states=st.sets(st.sampled_from(list(RunState)), max_size=3),
    labels=st.dictionaries(st.sampled_from(["team", "env"]), st.sampled_from(["a", "b"])),
    page_size=st.integers(1, 6),
)
async def test_paging_visits_every_matching_run_once_in_list_order(
    fresh_stores: FreshStores,
    runs: list[RunRecord],
    workflow_id: str,
    states: set[RunState],
    labels: dict[str, str],
    page_size: int,
) -> None:
    async with fresh_stores() as stores:
        store = stores.runs
        for run in runs:
            store.put_run(run)
        await store.commit()
        seen: list[str] = []
        after: tuple[float, str] | None = None
        while True:
            page = await store.list_runs(
                page_size, after=after, workflow_id=workflow_id, states=states, labels=labels
            )
            assert len(page) <= page_size
            seen += [run.run_id for run in page]
            if len(page) < page_size:
                break
            after = (page[-1].create_time, page[-1].run_id)

    expected = sorted(
        (
            run
            for run in runs
            if (not workflow_id or run.workflow_id == workflow_id)
            and (not states or run.state in states)
            and labels.items() <= run.labels.items()
        ),
        key=lambda run: (run.create_time, run.run_id),
        reverse=True,
    )
    assert seen == [run.run_id for run in expected]


# -- unfinished runs, sequences, events ------------------------------------------------


async def test_unfinished_runs_are_pending_running_or_waiting_oldest_first(
    run_store: RunStore,
) -> None:
    created = {
        "running-old": (RunState.RUNNING, T0),
        "waiting": (RunState.WAITING_APPROVAL, T0 + 1),
        "pending": (RunState.PENDING, T0 + 2),
        "running-new": (RunState.RUNNING, T0 + 3),
    }
    for offset, state in enumerate(FINAL_STATES):
        created[f"final-{state.name}"] = (state, T0 - 1 - offset)
    for run_id, (state, create_time) in shuffled(list(created.items())):
        run_store.put_run(run_record(run_id, state=state, create_time=create_time))
    await run_store.commit()

    assert await run_store.unfinished_run_ids() == [
        "running-old",
        "waiting",
        "pending",
        "running-new",
    ]


async def test_a_paused_run_is_unfinished_and_listed_as_paused(run_store: RunStore) -> None:
    # pause: recovery must resume a PAUSED run (to keep it paused), and
    # ListRuns filters on the state.
    run_store.put_run(run_record("paused", state=RunState.PAUSED, create_time=T0))
    run_store.put_run(run_record("running", state=RunState.RUNNING, create_time=T0 + 1))
    await run_store.commit()

    assert await run_store.unfinished_run_ids() == ["paused", "running"]
    batch = await run_store.unfinished_runs(10)
    assert [(view.run.run_id, view.run.state) for view in batch] == [
        ("paused", RunState.PAUSED),
        ("running", RunState.RUNNING),
    ]
    listed = await run_store.list_runs(10, states=[RunState.PAUSED])
    assert [run.run_id for run in listed] == ["paused"]


async def test_a_run_that_finishes_leaves_the_unfinished_list(run_store: RunStore) -> None:
    run_store.put_run(run_record("r1", state=RunState.RUNNING))
    await run_store.commit()
    assert await run_store.unfinished_run_ids() == ["r1"]

    run_store.put_run(run_record("r1", state=RunState.CANCELLED, end_time=T0 + 1))
    await run_store.commit()

    assert await run_store.unfinished_run_ids() == []


async def test_unfinished_runs_come_in_batches_oldest_first_with_steps_attempts_and_sequence(
    run_store: RunStore,
) -> None:
    created = {
        "b": (RunState.RUNNING, T0),
        "a": (RunState.WAITING_APPROVAL, T0),  # same create_time: run_id decides
        "c": (RunState.PENDING, T0 + 1),
        "d": (RunState.RUNNING, T0 + 2),
        "e": (RunState.RUNNING, T0 + 3),
    }
    for offset, state in enumerate(FINAL_STATES):
        created[f"final-{state.name}"] = (state, T0 + 1 + offset / 10)
    for run_id, (state, create_time) in shuffled(list(created.items())):
        run_store.put_run(run_record(run_id, state=state, create_time=create_time))
        run_store.put_step(run_id, step_record("first", 0))
        run_store.put_step(run_id, step_record("second", 1))
        run_store.put_attempt(run_id, "second", attempt_record(2))
        run_store.put_attempt(run_id, "second", attempt_record(1))
    for sequence in shuffled([1, 2, 3]):
        run_store.put_event(event("d", sequence))
    run_store.put_event(event("a", 7))
    await run_store.commit()

    first = await run_store.unfinished_runs(2)
    assert [view.run.run_id for view in first] == ["a", "b"]
    last = first[-1].run
    second = await run_store.unfinished_runs(2, after=(last.create_time, last.run_id))
    assert [view.run.run_id for view in second] == ["c", "d"]
    last = second[-1].run
    third = await run_store.unfinished_runs(2, after=(last.create_time, last.run_id))
    assert [view.run.run_id for view in third] == ["e"]
    last = third[-1].run
    assert await run_store.unfinished_runs(2, after=(last.create_time, last.run_id)) == []

    views = {view.run.run_id: view for view in [*first, *second, *third]}
    # The last sequence is the events' (the run records say 0), each run's own.
    assert {run_id: view.run.last_sequence for run_id, view in views.items()} == {
        "a": 7,
        "b": 0,
        "c": 0,
        "d": 3,
        "e": 0,
    }
    for run_id, view in views.items():
        assert [step.step_id for step in view.steps] == ["first", "second"]
        assert view.steps[0].attempts == []
        assert [a.number for a in view.steps[1].attempts] == [1, 2]
        # The same records as a run read alone.
        alone = await run_store.get_run(run_id)
        assert alone is not None and alone.steps == view.steps
        assert alone.run == dataclasses.replace(view.run, last_sequence=alone.run.last_sequence)


async def test_unfinished_runs_of_an_empty_store_are_none(run_store: RunStore) -> None:
    assert await run_store.unfinished_runs(100) == []


async def test_last_sequence_is_the_highest_committed_event_of_the_run(
    run_store: RunStore,
) -> None:
    for sequence in shuffled([1, 2, 3, 4, 5]):
        run_store.put_event(event("r1", sequence))
    run_store.put_event(event("r2", 9))
    await run_store.commit()

    assert await run_store.last_sequence("r1") == 5
    assert await run_store.last_sequence("r2") == 9
    assert await run_store.last_sequence("r3") == 0


async def test_events_are_read_after_a_sequence_in_order_up_to_a_limit(
    run_store: RunStore,
) -> None:
    for sequence in shuffled(list(range(1, 11))):
        run_store.put_event(event("r1", sequence))
    for sequence in (1, 2, 3):
        run_store.put_event(event("r2", sequence))
    await run_store.commit()

    def sequences(events: list[Event]) -> list[int]:
        return [e.sequence for e in events]

    assert sequences(await run_store.read_events("r1", 0, 100)) == list(range(1, 11))
    assert sequences(await run_store.read_events("r1", 4, 3)) == [5, 6, 7]
    assert sequences(await run_store.read_events("r1", 8, 10)) == [9, 10]
    assert await run_store.read_events("r1", 10, 10) == []
    assert [e.run_id for e in await run_store.read_events("r2", 0, 10)] == ["r2"] * 3


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
_finite = st.floats(allow_nan=False, allow_infinity=False)
_nanodollars = st.integers(0, 10**15).map(lambda nanos: Decimal(nanos).scaleb(-9))
# A run id per example: examples share the test's store, and an event key
# (run_id, sequence) is written once.
_example_runs = (f"run-{number}" for number in itertools.count())


@st.composite
def events(draw: st.DrawFn) -> Event:
    return Event(
        run_id="replaced-by-the-test",
        sequence=draw(st.integers(1, 2**31)),
        time=draw(_finite),
        type=draw(st.sampled_from(list(EventType))),
        workflow_id=draw(st.text(min_size=1)),
        run_state=draw(st.sampled_from(list(RunState))),
        step_id=draw(st.text()),
        step_state=draw(st.none() | st.sampled_from(list(StepState))),
        attempt=draw(st.integers(0, 1000)),
        message=draw(st.text()),
        progress=draw(st.floats(0, 1)),
        failure=draw(st.none() | st.builds(Failure, st.text(), st.text(), st.booleans())),
        output=draw(_json_values),
        usage=draw(st.none() | st.builds(Usage, *[st.integers(0, 2**40)] * 6)),
        cost=draw(st.none() | _nanodollars),
        provider=draw(st.text()),
        model=draw(st.text()),
        item=draw(st.integers(-1, 10**6)),
        retry_delay=draw(st.none() | st.floats(0, 1e9)),
        due_time=draw(st.none() | _finite),
        decision=draw(st.sampled_from([0, 1, 2])),
        breaker=draw(st.text()),
        budget=draw(st.text()),
        price_version=draw(st.text()),
        tool=draw(st.text()),
    )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(drawn=events())
async def test_any_event_round_trips(run_store: RunStore, drawn: Event) -> None:
    written = dataclasses.replace(drawn, run_id=next(_example_runs))
    run_store.put_event(written)
    await run_store.commit()

    assert await run_store.read_events(written.run_id, written.sequence - 1, 10) == [written]


# -- step cache ------------------------------------------------------------------------


async def test_a_cache_entry_is_live_until_it_expires(run_store: RunStore) -> None:
    run_store.put_cache("key", NESTED_OUTPUT, T0 + 10)
    await run_store.commit()

    assert await run_store.get_cache("key", T0) == (True, NESTED_OUTPUT)
    assert await run_store.get_cache("key", T0 + 9.5) == (True, NESTED_OUTPUT)
    assert await run_store.get_cache("key", T0 + 10.5) == (False, None)
    assert await run_store.get_cache("other-key", T0) == (False, None)


async def test_a_cached_null_output_is_a_hit(run_store: RunStore) -> None:
    # A step may legitimately output null: the flag, not the value, says hit.
    run_store.put_cache("key", None, T0 + 10)
    await run_store.commit()

    assert await run_store.get_cache("key", T0) == (True, None)


@pytest.mark.parametrize("output", [0, "", [], {}, False, 1.5, "text", [1, {"a": None}]])
async def test_cached_outputs_of_every_json_type_round_trip(
    run_store: RunStore, output: Any
) -> None:
    run_store.put_cache("key", output, T0 + 10)
    await run_store.commit()

    hit, read = await run_store.get_cache("key", T0)

    assert hit is True
    assert read == output and type(read) is type(output)


# -- retention -------------------------------------------------------------------------


async def test_finished_runs_before_a_cutoff_come_oldest_first_up_to_a_limit(
    run_store: RunStore,
) -> None:
    ended = {
        "old-partial": (RunState.PARTIALLY_SUCCEEDED, T0 + 4),
        "old-succeeded": (RunState.SUCCEEDED, T0 + 1),
        "old-cancelled": (RunState.CANCELLED, T0 + 3),
        "old-failed": (RunState.FAILED, T0 + 2),
        # "before" the cutoff: ending at it is not before it.
        "at-cutoff": (RunState.SUCCEEDED, T0 + 10),
        "recent": (RunState.FAILED, T0 + 20),
    }
    for run_id, (state, end_time) in shuffled(list(ended.items())):
        run_store.put_run(run_record(run_id, state=state, end_time=end_time, create_time=T0))
    for state in UNFINISHED_STATES:
        run_store.put_run(run_record(state.name.lower(), state=state, create_time=T0 - 100))
    await run_store.commit()

    everything = await run_store.finished_runs_before(T0 + 10, 100)
    limited = await run_store.finished_runs_before(T0 + 10, 2)

    assert everything == ["old-succeeded", "old-failed", "old-cancelled", "old-partial"]
    assert limited == ["old-succeeded", "old-failed"]


async def _record_a_whole_run(store: RunStore, run_id: str) -> None:
    store.put_run(
        run_record(run_id, state=RunState.SUCCEEDED, end_time=T0 + 5, request_id=f"req-{run_id}")
    )
    store.put_step(run_id, step_record("each", 0, state=StepState.SUCCEEDED))
    store.put_attempt(run_id, "each", attempt_record(1, item=0))
    store.put_attempt(run_id, "each", attempt_record(2, item=0))
    store.put_item(run_id, "each", item_record(0))
    for sequence in (1, 2, 3):
        store.put_event(event(run_id, sequence))
    await store.commit()


async def test_deleting_runs_removes_everything_recorded_about_them(
    run_store: RunStore,
) -> None:
    await _record_a_whole_run(run_store, "doomed")
    await _record_a_whole_run(run_store, "kept")
    kept_before = await run_store.get_run("kept")

    assert await run_store.delete_runs(["doomed"]) == 1

    assert await run_store.get_run("doomed") is None
    assert await run_store.run_status("doomed") is None
    assert await run_store.find_run_by_request_id("req-doomed") is None
    assert await run_store.read_events("doomed", 0, 10) == []
    assert await run_store.last_sequence("doomed") == 0
    assert await run_store.items_of("doomed", "each") == []
    assert [run.run_id for run in await run_store.list_runs(10)] == ["kept"]
    assert await run_store.finished_runs_before(T0 + 100, 10) == ["kept"]
    # Writing the run and its step again shows nothing left underneath:
    # no step, and no attempt, survived the delete.
    run_store.put_run(run_record("doomed"))
    await run_store.commit()
    reborn = await run_store.get_run("doomed")
    assert reborn is not None and reborn.steps == []
    run_store.put_step("doomed", step_record("each", 0))
    await run_store.commit()
    reborn = await run_store.get_run("doomed")
    assert reborn is not None and reborn.steps[0].attempts == []
    # The other run is untouched.
    assert await run_store.get_run("kept") == kept_before
    assert len(await run_store.read_events("kept", 0, 10)) == 3
    assert await run_store.items_of("kept", "each") == [item_record(0)]


async def test_deleting_runs_counts_only_the_runs_that_existed(run_store: RunStore) -> None:
    await _record_a_whole_run(run_store, "a")
    await _record_a_whole_run(run_store, "b")

    assert await run_store.delete_runs([]) == 0
    assert await run_store.delete_runs(["missing"]) == 0
    assert await run_store.delete_runs(["a", "missing", "b"]) == 2
    # Already gone.
    assert await run_store.delete_runs(["a"]) == 0


async def test_deleting_a_run_also_removes_its_writes_submitted_before(
    run_store: RunStore,
) -> None:
    # The retention pruner may delete a run while late writes about it are
    # still uncommitted; they must not resurrect a part of it.
    await _record_a_whole_run(run_store, "doomed")
    # Let a background commit start on an unrelated write, so that the late
    # writes below wait for the batch after it, as they do on a busy server.
    run_store.put_run(run_record("unrelated"))
    await asyncio.sleep(0)
    run_store.put_event(event("doomed", 4))
    run_store.put_step("doomed", step_record("late", 1))
    run_store.put_item("doomed", "each", item_record(1))

    assert await run_store.delete_runs(["doomed"]) == 1

    await run_store.commit()
    assert await run_store.read_events("doomed", 0, 10) == []
    assert await run_store.items_of("doomed", "each") == []
    run_store.put_run(run_record("doomed"))
    await run_store.commit()
    reborn = await run_store.get_run("doomed")
    assert reborn is not None and reborn.steps == []


# -- money -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount",
    # Up to a billion dollars: far above any run's spend; the SQLite backend
    # keeps integer nanos in 64 bits, which ends near 9.2 billion.
    ["0", "0.000000001", "0.1", "0.3", "1.000000001", "123456.789012345", "1000000000.000000001"],
)
async def test_money_round_trips_exactly_to_the_nanodollar(
    run_store: RunStore, amount: str
) -> None:
    money = Decimal(amount)
    run_store.put_run(run_record("r1", cost=money, max_cost=money))
    run_store.put_step("r1", dataclasses.replace(step_record("s", 0), cost=money))
    run_store.put_attempt("r1", "s", dataclasses.replace(attempt_record(1), cost=money))
    run_store.put_event(dataclasses.replace(event("r1", 1), cost=money))
    await run_store.commit()

    view = await run_store.get_run("r1")
    [read_event] = await run_store.read_events("r1", 0, 10)

    assert view is not None
    amounts = [
        view.run.cost,
        view.run.max_cost,
        view.steps[0].cost,
        view.steps[0].attempts[0].cost,
        read_event.cost,
    ]
    assert amounts == [money] * 5
    # Decimal == float holds for binary-exact values: check the type too.
    assert all(type(read) is Decimal for read in amounts)


async def test_events_of_given_types_come_back_alone_in_sequence_order(
    run_store: RunStore,
) -> None:
    kinds = [
        EventType.RUN_STARTED,
        EventType.LLM_CALL,
        EventType.STEP_WAITING,
        EventType.LLM_CALL,
        EventType.STEP_SUCCEEDED,
        EventType.STEP_WAITING,
    ]
    for sequence, kind in shuffled(list(enumerate(kinds, start=1))):
        run_store.put_event(event("r1", sequence, event_type=kind))
    run_store.put_event(event("r2", 1, event_type=EventType.LLM_CALL))
    await run_store.commit()

    wanted = {EventType.LLM_CALL, EventType.STEP_WAITING}
    read = await run_store.read_events_of_types("r1", wanted, 10)
    assert [(e.sequence, e.type) for e in read] == [
        (2, EventType.LLM_CALL),
        (3, EventType.STEP_WAITING),
        (4, EventType.LLM_CALL),
        (6, EventType.STEP_WAITING),
    ]
    assert [e.sequence for e in await run_store.read_events_of_types("r1", wanted, 2)] == [2, 3]
    assert await run_store.read_events_of_types("r1", set(), 10) == []
    assert await run_store.read_events_of_types("nope", wanted, 10) == []
