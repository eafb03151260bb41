"""JSON values of the API (a run's input and output, a step's output, an
event's payload) as plain Python.

google.protobuf.Value carries every number as a double, and so does JSON for
most readers: `4` and `4.0` are the same JSON number. Podium's values are
integers whenever they are integral: the server hands them to CEL and agents
as ints, and these helpers give them back as ints. An integer beyond ±2^53,
which a double cannot carry exactly, travels as a decimal string
("9007199254740993"); `int(...)` reads it back (in CEL too)."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

__all__ = ["MAX_EXACT_INT", "json_value", "to_python"]

MAX_EXACT_INT = 2**53


def json_value(value: Any) -> Any:
    """`value` (decoded JSON) with its integral numbers as ints."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_EXACT_INT:
        return int(value)
    if isinstance(value, dict):
        return {key: json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_value(item) for item in value]
    return value


def to_python(message: Message, *, preserving_proto_field_name: bool = False) -> Any:
    """A Struct, a Value or any message in the proto JSON mapping, as plain
    Python data with integral numbers as ints."""
    return json_value(
        json_format.MessageToDict(message, preserving_proto_field_name=preserving_proto_field_name)
    )
