"""What watching a run costs the server: each event is encoded once however
many subscribers send it, and a subscriber that never reads holds at most its
bounded buffer, whatever the size of the run (`make bench` W9 measures the
memory and the run's wall time with 200 subscribers)."""

from __future__ import annotations

import asyncio
from typing import Any

from podium.core.model import Event
from podium.core.states import EventType, RunState
from podium.server import translate
from podium.server.event_encoding import EventEncoder
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
