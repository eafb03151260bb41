"""Enum values from the names people type: "succeeded", "SUCCEEDED" or "RUN_STATE_SUCCEEDED"."""

from __future__ import annotations

from podium.v1 import event_pb2, run_pb2

__all__ = [
    "event_type",
    "event_type_label",
    "run_state",
    "run_state_label",
    "step_state",
    "step_state_label",
]

_RUN_STATE_PREFIX = "RUN_STATE_"
_STEP_STATE_PREFIX = "STEP_STATE_"
_EVENT_TYPE_PREFIX = "RUN_EVENT_TYPE_"


def _lookup(names: list[str], prefix: str, value: str, kind: str) -> str:
    key = value.strip().upper().replace("-", "_")
    full = key if key.startswith(prefix) else prefix + key
    if full not in names or full.endswith("_UNSPECIFIED"):
        choices = ", ".join(n.removeprefix(prefix).lower() for n in names if "UNSPECIFIED" not in n)
        raise ValueError(f"unknown {kind} {value!r} (choose from {choices})")
    return full


def run_state(value: int | str) -> run_pb2.RunState.ValueType:
    """A RunState from its number or (short, any-case) name."""
    if isinstance(value, int):
        return run_pb2.RunState.ValueType(value)
    names = list(run_pb2.RunState.keys())
    return run_pb2.RunState.Value(_lookup(names, _RUN_STATE_PREFIX, value, "run state"))


def step_state(value: int | str) -> run_pb2.StepState.ValueType:
    """A StepState from its number or (short, any-case) name."""
    if isinstance(value, int):
        return run_pb2.StepState.ValueType(value)
    names = list(run_pb2.StepState.keys())
    return run_pb2.StepState.Value(_lookup(names, _STEP_STATE_PREFIX, value, "step state"))


def event_type(value: int | str) -> event_pb2.RunEventType.ValueType:
    """A RunEventType from its number or (short, any-case) name."""
    if isinstance(value, int):
        return event_pb2.RunEventType.ValueType(value)
    names = list(event_pb2.RunEventType.keys())
    return event_pb2.RunEventType.Value(_lookup(names, _EVENT_TYPE_PREFIX, value, "event type"))


def _label(name_of: str, prefix: str) -> str:
    return name_of.removeprefix(prefix)


def run_state_label(value: int) -> str:
    """ "SUCCEEDED" for RUN_STATE_SUCCEEDED; the number for values this client does not know."""
    try:
        return _label(run_pb2.RunState.Name(run_pb2.RunState.ValueType(value)), _RUN_STATE_PREFIX)
    except ValueError:
        return str(value)


def step_state_label(value: int) -> str:
    """ "RUNNING" for STEP_STATE_RUNNING; the number for values this client does not know."""
    try:
        return _label(
            run_pb2.StepState.Name(run_pb2.StepState.ValueType(value)), _STEP_STATE_PREFIX
        )
    except ValueError:
        return str(value)


def event_type_label(value: int) -> str:
    """ "STEP_STARTED" for RUN_EVENT_TYPE_STEP_STARTED; the number for unknown values."""
    try:
        return _label(
            event_pb2.RunEventType.Name(event_pb2.RunEventType.ValueType(value)), _EVENT_TYPE_PREFIX
        )
    except ValueError:
        return str(value)
