"""google.protobuf.Struct -> plain Python, checked: what json_format would
choke on (NaN and infinities raise ValueError; deep nesting a RecursionError
somewhere later) is bad input, named by its field path."""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import struct_pb2

from podium.core.jsonvalues import from_json_numbers
from podium.server.status import invalid

# Deeper than any configuration or input a person writes, and far below where
# JSON encoding, CEL and pydantic would recurse out of stack.
MAX_DEPTH = 32


def struct_to_dict(message: struct_pb2.Struct, field: str) -> dict[str, Any]:
    """The Struct as a dict (integral numbers as ints), or InvalidArgument
    naming `field.path.to.value` when a number is not finite or nesting is
    deeper than MAX_DEPTH."""
    result: dict[str, Any] = from_json_numbers(_struct(message, field, 1))
    return result


def _struct(message: struct_pb2.Struct, path: str, depth: int) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise invalid(path, f"nested deeper than {MAX_DEPTH} levels")
    return {key: _value(item, f"{path}.{key}", depth) for key, item in message.fields.items()}


def _value(message: struct_pb2.Value, path: str, depth: int) -> Any:
    kind = message.WhichOneof("kind")
    if kind == "number_value":
        number = message.number_value
        if not math.isfinite(number):
            raise invalid(path, f"{number} is not a JSON number (must be finite)")
        return number
    if kind == "string_value":
        return message.string_value
    if kind == "bool_value":
        return message.bool_value
    if kind == "struct_value":
        return _struct(message.struct_value, path, depth + 1)
    if kind == "list_value":
        if depth + 1 > MAX_DEPTH:
            raise invalid(path, f"nested deeper than {MAX_DEPTH} levels")
        return [
            _value(item, f"{path}[{index}]", depth + 1)
            for index, item in enumerate(message.list_value.values)
        ]
    return None  # null_value, or no kind set: JSON null


def value_to_python(message: struct_pb2.Value, field: str) -> Any:
    """A Value as plain Python, checked as `struct_to_dict` checks a Struct."""
    return _value(message, field, 1)
