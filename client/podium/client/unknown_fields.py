"""Finds the first unknown field of a definition, with its full path and the nearest real name.

protobuf's JSON parser says `spec.steps: unknown field 'depends_onn'`: neither which step nor
what was meant. Walking the document beside the message descriptors gives
`spec.steps[2]: unknown field 'depends_onn' (did you mean 'depends_on'?)`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

__all__ = ["find_unknown_field"]

# Well-known types whose JSON form is free (Struct, Value) or a string (Duration, Timestamp...).
_OPAQUE = frozenset(
    {
        "google.protobuf.Struct",
        "google.protobuf.Value",
        "google.protobuf.ListValue",
        "google.protobuf.Duration",
        "google.protobuf.Timestamp",
        "google.protobuf.FieldMask",
        "google.protobuf.Any",
    }
)


def find_unknown_field(document: Any, descriptor: Descriptor, path: str = "") -> str | None:
    """`path: unknown field 'x' (did you mean 'y'?)` for the first unknown field, or None."""
    if not isinstance(document, Mapping) or descriptor.full_name in _OPAQUE:
        return None
    by_name = _fields_by_name(descriptor)
    for key, value in document.items():
        field = by_name.get(str(key))
        if field is None:
            where = f"{path}: " if path else ""
            return f"{where}unknown field {key!r}{_nearest(str(key), descriptor)}"
        found = _check_value(value, field, _join(path, field.name))
        if found is not None:
            return found
    return None


def _check_value(value: Any, field: FieldDescriptor, path: str) -> str | None:
    message = field.message_type
    if message is None:
        return None
    if message.GetOptions().map_entry:
        value_field = message.fields_by_name["value"]
        if isinstance(value, Mapping) and value_field.message_type is not None:
            for key, item in value.items():
                found = _check_value(item, value_field, f"{path}[{key!r}]")
                if found is not None:
                    return found
        return None
    if field.is_repeated and isinstance(value, list):
        for index, item in enumerate(value):
            found = find_unknown_field(item, message, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    return find_unknown_field(value, message, path)


def _fields_by_name(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    # The proto JSON mapping accepts both the .proto name and its lowerCamelCase JSON name.
    names = {field.name: field for field in descriptor.fields}
    names.update({field.json_name: field for field in descriptor.fields})
    return names


def _nearest(key: str, descriptor: Descriptor) -> str:
    close = difflib.get_close_matches(key, [f.name for f in descriptor.fields], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
