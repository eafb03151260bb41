"""JSON values: what workflow data, agent outputs and event payloads may hold.

One place decides how a Python value becomes JSON-compatible, strictly (an
agent's output: anything else is an error) or leniently (a payload for an
event: anything else is shown by its repr), and how JSON's doubles become
integers again for CEL.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["NotJsonCompatible", "from_json_numbers", "json_compatible", "jsonable"]


class NotJsonCompatible(ValueError):
    """A value that JSON cannot hold (NaN, infinity, an object, a cycle)."""


def json_compatible(value: Any) -> Any:
    """`value` as plain JSON data (a deep copy), or NotJsonCompatible."""
    if value is None or isinstance(value, str | bool | int):
        return value
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise NotJsonCompatible(str(error)) from None


def jsonable(value: Any) -> Any:
    """`value` as plain JSON data if it is JSON-compatible, else its repr:
    for payloads that must never fail what carries them (an event)."""
    try:
        return json_compatible(value)
    except NotJsonCompatible:
        return repr(value)


def from_json_numbers(value: Any) -> Any:
    """Integral floats become ints: JSON and google.protobuf.Struct carry every
    number as a double, and CEL has no int/double arithmetic (`x + 1` fails on
    a double x)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, list):
        return [from_json_numbers(item) for item in value]
    if isinstance(value, dict):
        return {key: from_json_numbers(item) for key, item in value.items()}
    return value
