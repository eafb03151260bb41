"""Reading a run's event log, as WatchRun delivers it."""

from __future__ import annotations

from collections.abc import Sequence

from podium.v1 import event_pb2

__all__ = ["FINAL_EVENT_TYPES", "index_of", "of_type", "sequences"]

E = event_pb2

# A run's last event is one of these; WatchRun ends after it.
FINAL_EVENT_TYPES = frozenset(
    {
        E.RUN_EVENT_TYPE_RUN_SUCCEEDED,
        E.RUN_EVENT_TYPE_RUN_FAILED,
        E.RUN_EVENT_TYPE_RUN_CANCELLED,
        E.RUN_EVENT_TYPE_RUN_PARTIALLY_SUCCEEDED,
    }
)


def sequences(events: Sequence[event_pb2.RunEvent]) -> list[int]:
    """The events' sequence numbers: a gap-free log is 1..n."""
    return [e.sequence for e in events]


def of_type(
    events: Sequence[event_pb2.RunEvent], type_: event_pb2.RunEventType.ValueType
) -> list[event_pb2.RunEvent]:
    return [e for e in events if e.type == type_]


def index_of(
    events: Sequence[event_pb2.RunEvent],
    type_: event_pb2.RunEventType.ValueType,
    step_id: str = "",
) -> int:
    """Position of the first event of `type_` for `step_id` ("": the run's
    own), to assert the order of two events."""
    for i, event in enumerate(events):
        if event.type == type_ and event.step_id == step_id:
            return i
    raise AssertionError(f"no event {E.RunEventType.Name(type_)} for step {step_id!r}")
