"""JSON values: what workflow data, agent outputs and event payloads may hold.

One place decides how a Python value becomes JSON-compatible, strictly (an
agent's output: anything else is an error) or leniently (a payload for an
event: anything else is shown by its repr), and how JSON's doubles become
integers again for CEL.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

__all__ = [
    "MAX_EXACT_INT",
    "OFF_LOOP_BYTES",
    "NotJsonCompatible",
    "TooLarge",
    "check_json_size",
    "compact_json",
    "compact_json_within",
    "exceeds_json_size",
    "flat_json_copy",
    "from_json_numbers",
    "json_compatible",
    "json_depth",
    "jsonable",
    "remember_compact_json",
    "shared_compact_json",
]

# Every number reaches clients as a double (google.protobuf.Value): an
# integer beyond 2^53 would be read back as another number than the one
# stored (beyond ~1.8e308, not at all), so it travels as its decimal string
# instead ("9007199254740993"), exactly; `int(...)` reads it back in CEL.
MAX_EXACT_INT = 2**53
# Upper bounds of JSON text, in UTF-8 bytes, for flat_json_copy: a character
# of a string ("\u001f" is six), a number ("-2.2250738585072014e-308" is 24),
# `false` or `null`.
_CHAR_BYTES = 6
_NUMBER_BYTES = 24
_WORD_BYTES = 5
_CONTAINERS = (dict, list, tuple)
_PLAIN_SCALARS = frozenset({int, float, bool, type(None)})
# A request's value whose JSON text may be longer than this is converted and
# encoded in a worker thread, not on the event loop: a legal 1 MiB run input
# took 0.3-0.7 s of the loop to convert, check, hash and store, and every
# other call waited (the worker hands the interpreter back every switch
# interval).
OFF_LOOP_BYTES = 64 * 1024

# The JSON text of a value as it is stored: compact, UTF-8 as is, no NaN.
compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode

# The last few large values shared_compact_json encoded, with their texts
# (newest last): a step's input and output are written alternately.
_RECENT_TEXTS = 4
_recent_texts: tuple[tuple[Any, str], ...] = ()


def shared_compact_json(value: Any) -> str:
    """compact_json(value), encoded once for a large value written several
    times: a step's input at each save of its row, its output to its row and
    its events after its size check, a run's output likewise (a fan-out's
    combined output was encoded six times, each holding the interpreter lock
    for milliseconds per 100 KB). The text is reused only for that very
    object, which nothing changes once it is recorded."""
    text = _shared_text(value)
    if text is None:
        text = compact_json(value)
        remember_compact_json(value, text)
    return text


def remember_compact_json(value: Any, text: str) -> None:
    """Tells shared_compact_json the text of `value` (made by its caller, say
    from its parts' shared texts), kept if large."""
    global _recent_texts
    if len(text) > OFF_LOOP_BYTES:
        # Rebound whole, never changed in place: a reader in another thread
        # sees one tuple or the other.
        _recent_texts = (*_recent_texts[1 - _RECENT_TEXTS :], (value, text))


def _shared_text(value: Any) -> str | None:
    for held, text in _recent_texts:
        if held is value:
            return text
    return None


class NotJsonCompatible(ValueError):
    """A value that JSON cannot hold (NaN, infinity, an object, a cycle)."""


class TooLarge(NotJsonCompatible):
    """A value whose JSON text is longer than the limit it was checked against."""

    def __init__(self, size: int, limit: int, *, at_least: bool = False) -> None:
        size_text = f"at least {size}" if at_least else str(size)
        super().__init__(f"{size_text} bytes as JSON, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


def json_compatible(value: Any, *, max_bytes: int | None = None) -> Any:
    """`value` as plain JSON data (a deep copy, integers beyond ±2^53 as
    decimal strings), or NotJsonCompatible; with `max_bytes`, TooLarge when
    its JSON text (UTF-8) is longer than that."""
    if value is None or (isinstance(value, str | bool) and max_bytes is None):
        return value
    flat = flat_json_copy(value, max_bytes)
    if flat is not None:
        return flat
    if max_bytes is not None:
        text_at_least = _text_at_least(value, max_bytes)
        if text_at_least > max_bytes:
            # Its strings alone are over the limit: no need to encode it all.
            raise TooLarge(text_at_least, max_bytes, at_least=True)
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    # RecursionError: nested deeper than the interpreter's stack.
    except (TypeError, ValueError, RecursionError) as error:
        raise NotJsonCompatible(str(error)) from None
    # A character takes 1 to 4 bytes in UTF-8: encode only when that matters.
    if max_bytes is not None and len(text) * 4 > max_bytes:
        size = len(text.encode())
        if size > max_bytes:
            raise TooLarge(size, max_bytes)
    return _exact_integers(json.loads(text))


def flat_json_copy(value: Any, max_bytes: int | None) -> dict[str, Any] | None:
    """What json_compatible returns for `value` when `value` is a map of
    plain strings, exact integers, finite doubles, booleans and nulls whose
    JSON text is certainly within `max_bytes` (most agent outputs, and every
    step's output in a chain of no-op steps); None for anything else, which
    the general path decides. Checked in one pass, without encoding and
    decoding it: on the server's event loop, that is a tenth of a step's
    cost for a small output."""
    if type(value) is not dict:
        return None
    size = 2  # the braces
    for key, item in value.items():
        if type(key) is not str:
            return None  # json.dumps would turn it into a string, or refuse it
        kind = type(item)
        if kind is str:
            size += len(item) * _CHAR_BYTES + 2
        elif kind is int:
            if not -MAX_EXACT_INT <= item <= MAX_EXACT_INT:
                return None  # travels as its decimal string
            size += _NUMBER_BYTES
        elif kind is float:
            if not math.isfinite(item):
                return None  # refused
            size += _NUMBER_BYTES
        elif kind is bool or item is None:
            size += _WORD_BYTES
        else:
            return None  # a container, or a subclass json.dumps may encode otherwise
        size += len(key) * _CHAR_BYTES + 4  # its quotes, the colon and a comma
        if max_bytes is not None and size > max_bytes:
            # Perhaps too large: the general path measures it exactly (and
            # stops counting a huge map at the limit, as this does).
            return None
    if max_bytes is not None and size > max_bytes:
        return None  # `{}` itself is two bytes
    return dict(value)


def check_json_size(value: Any, max_bytes: int) -> None:
    """TooLarge when the JSON text (UTF-8) of `value`, already JSON-compatible,
    is longer than `max_bytes`; nothing is copied."""
    shared = _shared_text(value)
    if shared is not None:  # encoded already: its length is known
        _check_text_size(shared, max_bytes)
        return
    text_at_least = _text_at_least(value, max_bytes)
    if text_at_least > max_bytes:
        raise TooLarge(text_at_least, max_bytes, at_least=True)
    try:
        text = shared_compact_json(value)
    except ValueError:  # NaN or infinity: JSON text all the same, as json.dumps writes it
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    _check_text_size(text, max_bytes)


def compact_json_within(value: Any, max_bytes: int) -> str:
    """`compact_json(value)`, or TooLarge as check_json_size says (ValueError
    for a value that is not JSON: NaN, a cycle)."""
    text_at_least = _text_at_least(value, max_bytes)
    if text_at_least > max_bytes:
        raise TooLarge(text_at_least, max_bytes, at_least=True)
    text = compact_json(value)
    _check_text_size(text, max_bytes)
    return text


def exceeds_json_size(value: Any, limit: int) -> bool:
    """Whether `value`'s JSON text may be longer than `limit` characters:
    cheap (it stops counting past `limit`), for choosing where to encode."""
    return _text_at_least(value, limit) > limit


def _check_text_size(text: str, max_bytes: int) -> None:
    if len(text) * 4 > max_bytes:
        size = len(text.encode())
        if size > max_bytes:
            raise TooLarge(size, max_bytes)


def json_depth(value: Any, stop_above: int) -> int:
    """How deeply lists and maps nest in `value` (a scalar is 0, `[1]` is 1),
    counted without recursion and only until past `stop_above`."""
    deepest = 0
    pending = [(value, 0)]
    seen: set[int] = set()
    while pending and deepest <= stop_above:
        item, level = pending.pop()
        if isinstance(item, dict | list | tuple) and id(item) not in seen:
            seen.add(id(item))
            deepest = max(deepest, level + 1)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, level + 1) for child in children)
    return deepest


def _text_at_least(value: Any, limit: int) -> int:
    """A lower bound of the length of `value`'s JSON text, stopping as soon
    as it is over `limit`: the characters of its strings and keys (never more
    bytes than UTF-8 has), a character for every other scalar, and the
    brackets and separators of its lists and maps (so that a list of
    numbers, not only of strings, is found too large without encoding it).

    It runs on the event loop for every fan-out's combined output and every
    run's output, so the common children (strings, numbers) are counted where
    they are met instead of going through the stack: a 10,000-item list of
    small maps takes about 6 ms, not 20. A container is counted once (a
    cycle too: json.dumps rejects it later, as not JSON)."""
    total = 0
    pending = [value]
    pop, push = pending.pop, pending.append
    seen: set[int] = set()
    while pending and total <= limit:
        item = pop()
        if isinstance(item, str):
            total += len(item) + 2
            continue
        if not isinstance(item, _CONTAINERS):
            total += 1
            continue
        if id(item) in seen:
            continue
        seen.add(id(item))
        count = len(item)
        total += count + 1 if count else 2  # brackets and separators
        if total + count > limit:
            # Each child adds at least a character: a huge flat container is
            # over the limit without a walk of all of it.
            return total + count
        if isinstance(item, dict):
            for key in item:
                if isinstance(key, str):
                    total += len(key) + 3  # its quotes and the colon
            children: Iterable[Any] = item.values()
        else:
            children = item
        for child in children:
            kind = type(child)
            if kind is str:
                total += len(child) + 2
            elif kind in _PLAIN_SCALARS:
                total += 1
            else:
                push(child)
    return total


def _exact_integers(value: Any) -> Any:
    """`value` (a fresh copy) with every integer beyond ±2^53 as its decimal string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if abs(value) > MAX_EXACT_INT else value
    if isinstance(value, list):
        for index, item in enumerate(value):
            value[index] = _exact_integers(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            value[key] = _exact_integers(item)
    return value


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
