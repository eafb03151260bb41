"""Between plain Python data and the protobuf messages of the API.

Workflow inputs and step outputs travel as google.protobuf.Struct/Value,
amounts as google.type-like Money: tests state what they expect as plain
dicts, lists and numbers, and compare after one conversion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message

from podium.client.values import to_python
from podium.v1 import common_pb2

__all__ = ["json_value", "money_nanos", "plain", "struct"]


def json_value(data: Any) -> struct_pb2.Value:
    """A Value holding `data` (any JSON value)."""
    message = struct_pb2.Value()
    json_format.ParseDict(data, message)
    return message


def struct(data: Mapping[str, Any] | None) -> struct_pb2.Struct:
    """A Struct holding `data` (None: an empty one)."""
    message = struct_pb2.Struct()
    if data:
        message.update(dict(data))
    return message


def plain(message: Message) -> Any:
    """A message (a Struct or Value above all) as plain Python data, in the
    proto JSON mapping, integral numbers as ints (as podium.client reads them)."""
    return to_python(message)


def money_nanos(money: common_pb2.Money) -> int:
    """An amount in billionths of its currency: exact, unlike a float."""
    return money.units * 1_000_000_000 + money.nanos
