"""What watching a run costs the server: each event is encoded once however
many subscribers send it, and a subscriber that never reads holds at most its
bounded buffer, whatever the size of the run (`make bench` W9 measures the
memory and the run's wall time with 200 subscribers)."""

from __future__ import annotations

import asyncio
import tracemalloc
import uuid
from dataclasses import replace
from typing import Any

from podium.core.model import Event
from podium.core.states import EventType, RunState
from podium.server import translate
from podium.server.event_encoding import RESPONSE_BYTES, EventEncoder
from podium.testing import collect_events, create_workflow, echo_step, run_to_end, serving
from podium.v1 import progress_service_pb2, run_pb2


def fan_out(items_from: str = "input.items", **first: Any) -> dict[str, Any]:
    each = echo_step("each", "first", forEach={"items": items_from}, input={"value": "item"})
    return {"steps": [{"id": "first", **first}, each]}


async def test_every_subscriber_sends_the_same_encoding_of_an_event() -> None:
    async with serving() as (server, stubs):
        await create_workflow(stubs, "fan", fan_out(agent="echo"))
        run, events = await run_to_end(stubs, "fan", {"items": list(range(100))})
        assert run.state == run_pb2.RUN_STATE_SUCCEEDED
        encoder = server.event_encoder
        assert encoder is not None
        # Five more subscribers catch up from the start, concurrently.
        replays = await asyncio.gather(*(collect_events(stubs, run.name) for _ in range(5)))
        assert all(replay == events for replay in replays)
        # Six subscribers in all, each event encoded once.
        assert encoder.encodings == len(events)


def test_a_response_is_its_events_encodings_concatenated() -> None:
    encoder = EventEncoder()
    events = [
        Event("r", n, 1.5, EventType.ITEM_SUCCEEDED, "wf", RunState.RUNNING, "each", output="x" * n)
        for n in range(1, 300, 37)  # entries of one- and two-byte lengths
    ]
    decoded = progress_service_pb2.WatchRunResponse.FromString(encoder.response(events))
    assert list(decoded.events) == [translate.event_to_proto(e) for e in events]
    assert encoder.entry(events[0]) is encoder.response(events[:1])
    assert encoder.encodings == len(events)


def _items(count: int, output: Any = None) -> list[Event]:
    return [
        Event("r", n, 1.5, EventType.ITEM_SUCCEEDED, "wf", RunState.RUNNING, "each", output=output)
        for n in range(1, count + 1)
    ]


async def _responses(encoder: EventEncoder, events: list[Event]) -> list[bytes]:
    return [response async for response in encoder.responses(events)]


async def test_a_long_batch_is_sent_as_several_responses_in_order() -> None:
    events = _items(2500, output={"v": 1})
    responses = await _responses(EventEncoder(), events)
    decoded = [progress_service_pb2.WatchRunResponse.FromString(r).events for r in responses]
    # At most RESPONSE_EVENTS (1024) each: the loop is free between two of them.
    assert [len(d) for d in decoded] == [1024, 1024, 452]
    assert [e for d in decoded for e in d] == [translate.event_to_proto(e) for e in events]


async def test_a_response_stays_under_its_byte_bound_and_a_huge_event_goes_alone() -> None:
    events = _items(7, output="x" * (RESPONSE_BYTES // 3))
    events[4] = replace(events[4], output="y" * (2 * RESPONSE_BYTES))
    responses = await _responses(EventEncoder(), events)
    decoded = [progress_service_pb2.WatchRunResponse.FromString(r).events for r in responses]
    assert [[e.sequence for e in d] for d in decoded] == [[1, 2], [3, 4], [5], [6, 7]]
    assert all(len(r) <= RESPONSE_BYTES for i, r in enumerate(responses) if i != 2)


async def test_subscribers_draining_the_same_batch_share_its_response() -> None:
    encoder = EventEncoder()
    events = _items(40)
    [first] = await _responses(encoder, events)
    [second] = await _responses(encoder, events)
    assert second is first
    assert encoder.encodings == len(events)
    # Another cut of the same events is a response of its own, from the shared entries.
    [part] = await _responses(encoder, events[5:])
    assert part == b"".join(encoder.entry(e) for e in events[5:])
    assert encoder.encodings == len(events)


async def test_a_large_event_is_encoded_once_in_a_thread_and_shared() -> None:
    output = [{"item": i} for i in range(3000)]  # over LARGE_OUTPUT_ENTRIES
    [event] = _items(1, output=output)
    encoder = EventEncoder()
    entries = await asyncio.gather(*(encoder.entry_aside(event) for _ in range(5)))
    assert encoder.encodings == 1
    assert all(entry is entries[0] for entry in entries)
    assert entries[0] == EventEncoder().entry(event)
    assert encoder.entry(event) is entries[0]  # kept for later subscribers


def test_the_events_kept_encoded_cost_at_most_their_budget_in_memory() -> None:
    # Small events of many runs, each run's id alive only in the cache's key
    # (its run has finished): what the cache holds, measured, stays within
    # its budget however many pass through.
    budget = 1_000_000
    encoder = EventEncoder(budget_bytes=budget)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for sequence in range(1000, 31_000):
            encoder.entry(
                Event(
                    uuid.uuid4().hex,
                    sequence,
                    1.5,
                    EventType.STEP_STARTED,
                    "wf",
                    RunState.RUNNING,
                    "a",
                )
            )
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert encoder.cached_bytes <= budget
    assert kept <= budget * 1.1, f"{kept} bytes held for a budget of {budget}"
