"""Run events encoded once, whatever the number of subscribers.

Two hundred subscribers of a run used to translate and serialise each event two
hundred times: CPU taken from the run itself, and as many copies in memory.
Here an event is encoded once, as its entry in the `events` field of a watch
response (tag, length, RunEvent bytes), and that bytes object is shared by
every subscriber that sends it. A response is the concatenation of its events'
entries, which is exactly how protobuf encodes a repeated message field; the
servicer yields those bytes and the handler sends them as they are
(`passthrough`), instead of serialising a message per subscriber.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from podium.core.model import Event
from podium.server import translate

# `events` is field 1, length-delimited, in both WatchRunResponse and WatchRunsResponse.
_EVENTS_TAG = bytes([(1 << 3) | 2])
# Encoded entries kept for the subscribers that send the same event later
# (a slower reader, a catch-up from the log). Bytes, not events: an event with
# a large output weighs what it weighs.
DEFAULT_BUDGET_BYTES = 32 * 1024 * 1024


class EventEncoder:
    """Encoded events by (run, sequence), least recently used dropped first."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self._budget = budget_bytes
        self._size = 0
        self._entries: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        # Events serialised so far (a test checks that subscribers share them).
        self.encodings = 0

    def entry(self, event: Event) -> bytes:
        """The event's encoded entry in a watch response's `events` field."""
        key = (event.run_id, event.sequence)
        entries = self._entries
        cached = entries.get(key)
        if cached is not None:
            entries.move_to_end(key)
            return cached
        body = translate.event_to_proto(event).SerializeToString()
        self.encodings += 1
        encoded = _EVENTS_TAG + _varint(len(body)) + body
        if len(encoded) <= self._budget // 8:  # a huge event is not worth evicting many for
            entries[key] = encoded
            self._size += len(encoded)
            while self._size > self._budget:
                _, dropped = entries.popitem(last=False)
                self._size -= len(dropped)
        return encoded

    def response(self, events: Sequence[Event]) -> bytes:
        """A whole WatchRunResponse (or WatchRunsResponse) of these events."""
        if len(events) == 1:
            return self.entry(events[0])
        return b"".join(self.entry(event) for event in events)

    @property
    def cached_bytes(self) -> int:
        return self._size


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def passthrough(serialize: Any) -> Any:
    """A response serializer that sends pre-encoded bytes as they are and
    serialises anything else with `serialize`."""

    def serializer(response: Any) -> bytes:
        if isinstance(response, bytes):
            return response
        return bytes(serialize(response))

    return serializer
