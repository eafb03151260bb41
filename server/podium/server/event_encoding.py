"""Run events encoded once, whatever the number of subscribers.

Two hundred subscribers of a run used to translate and serialise each event two
hundred times: CPU taken from the run itself, and as many copies in memory.
Here an event is encoded once, as its entry in the `events` field of a watch
response (tag, length, RunEvent bytes), and that bytes object is shared by
every subscriber that sends it. A response is the concatenation of its events'
entries, which is exactly how protobuf encodes a repeated message field; the
servicer yields those bytes and the handler sends them as they are
(`passthrough`), instead of serialising a message per subscriber.

A batch is sent as responses of at most RESPONSE_EVENTS events and
RESPONSE_BYTES bytes (a single larger event goes alone), each encoded just
before it is sent, so that a subscriber catching up on thousands of events
does not hold the event loop for all of them at once, and a response stays
well under the 4 MiB clients accept by default; an event whose output is
large (a fan-out's 10,000 item outputs) is encoded in a worker thread, which
hands the interpreter back to the loop every switch interval. Subscribers
sending the same batch (a run's feed releases the same slice to all of them,
see engine/hub.py) cut it the same way and send the same bytes objects.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Any

from podium.core.model import Event
from podium.server import translate

# `events` is field 1, length-delimited, in both WatchRunResponse and WatchRunsResponse.
_EVENTS_TAG = bytes([(1 << 3) | 2])
# Encoded entries kept for the subscribers that send the same event later
# (a slower reader, a catch-up from the log). Bytes, not events: an event with
# a large output weighs what it weighs.
DEFAULT_BUDGET_BYTES = 32 * 1024 * 1024
# What an entry costs beyond its bytes, counted against the budget: its key
# (a tuple, the run id, the sequence), the bytes object's header and the
# ordered dict's slot. Measured: 363 bytes in all for an 87-byte entry; counting
# the bytes alone let the cache hold four times its budget of small events,
# most of them of runs long finished (a server's memory grew for the first
# 90,000 runs).
ENTRY_OVERHEAD = 280
# A message costs the loop (and the client) about as much whatever it holds:
# fuller messages, fewer of them.
RESPONSE_EVENTS = 1024
RESPONSE_BYTES = 1024 * 1024
# Whole responses kept: subscribers that keep up take the same batches (what
# their run's feed released), so all but the first send the bytes the first
# built, with one look-up instead of one per event.
RESPONSES_KEPT = 64
# Lists and maps entries from which an event's output is encoded in a thread.
LARGE_OUTPUT_ENTRIES = 2000


class EventEncoder:
    """Encoded events by (run, sequence), least recently used dropped first."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self._budget = budget_bytes
        self._size = 0
        self._entries: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        # Events serialised so far (a test checks that subscribers share them).
        self.encodings = 0
        # Large events being encoded in a thread, so that subscribers share that too.
        self._encoding: dict[tuple[str, int], asyncio.Future[bytes]] = {}
        # Recent responses by (run, first sequence, last sequence) of their events.
        # Recent responses by (run, first sequence, the batch's last sequence):
        # the bytes, and how many events they hold.
        self._responses: OrderedDict[tuple[str, int, int], tuple[bytes, int]] = OrderedDict()

    def entry(self, event: Event) -> bytes:
        """The event's encoded entry in a watch response's `events` field."""
        key = (event.run_id, event.sequence)
        entries = self._entries
        cached = entries.get(key)
        if cached is not None:
            entries.move_to_end(key)
            return cached
        return self._keep(key, _encode(event))

    async def entry_aside(self, event: Event) -> bytes:
        """As `entry`, encoding a large event in a worker thread."""
        key = (event.run_id, event.sequence)
        cached = self._entries.get(key)
        if cached is not None or not _large(event.output):
            return self.entry(event)
        encoding = self._encoding.get(key)
        if encoding is None:
            encoding = asyncio.ensure_future(asyncio.to_thread(_encode, event))
            self._encoding[key] = encoding
            encoding.add_done_callback(lambda done: self._encoded(key, done))
        # shield: a subscriber leaving does not cancel what the others wait for.
        return await asyncio.shield(encoding)

    def _encoded(self, key: tuple[str, int], done: asyncio.Future[bytes]) -> None:
        del self._encoding[key]
        if not done.cancelled() and done.exception() is None:
            self._keep(key, done.result())

    async def responses(self, events: Sequence[Event]) -> AsyncIterator[bytes]:
        """The batch as WatchRun(s)Response messages of at most RESPONSE_EVENTS
        events and RESPONSE_BYTES bytes each, every one encoded just before it is sent."""
        start = 0
        while start < len(events):
            response, start = await self._response(events, start)
            yield response

    async def _response(self, events: Sequence[Event], start: int) -> tuple[bytes, int]:
        """The response of the events from `start` on, and where the next one starts."""
        first, last = events[start], events[-1]
        # A run's consecutive events (WatchRun's batches) are named by their ends.
        key = (first.run_id, first.sequence, last.sequence)
        named = (
            last.run_id == first.run_id
            and last.sequence - first.sequence == len(events) - 1 - start
        )
        if named:
            cached = self._responses.get(key)
            if cached is not None:
                return cached[0], start + cached[1]
        entries = self._entries
        parts: list[bytes] = []
        size = 0
        end = min(len(events), start + RESPONSE_EVENTS)
        index = start
        while index < end:
            event = events[index]
            entry = entries.get((event.run_id, event.sequence))
            if entry is None:
                entry = await self.entry_aside(event)
            if parts and size + len(entry) > RESPONSE_BYTES:
                break
            parts.append(entry)
            size += len(entry)
            index += 1
        response = b"".join(parts)
        if named and size <= self._budget // RESPONSES_KEPT:
            responses = self._responses
            responses[key] = (response, index - start)
            if len(responses) > RESPONSES_KEPT:
                responses.popitem(last=False)
        return response, index

    def _keep(self, key: tuple[str, int], encoded: bytes) -> bytes:
        self.encodings += 1
        entries = self._entries
        if len(encoded) <= self._budget // 8:  # a huge event is not worth evicting many for
            entries[key] = encoded
            self._size += len(encoded) + ENTRY_OVERHEAD
            while self._size > self._budget:
                _, dropped = entries.popitem(last=False)
                self._size -= len(dropped) + ENTRY_OVERHEAD
        return encoded

    def response(self, events: Sequence[Event]) -> bytes:
        """A whole WatchRunResponse (or WatchRunsResponse) of these events."""
        if len(events) == 1:
            return self.entry(events[0])
        return b"".join(self.entry(event) for event in events)

    @property
    def cached_bytes(self) -> int:
        """What the kept entries cost, by the budget's count."""
        return self._size


def _encode(event: Event) -> bytes:
    body = translate.event_to_proto(event).SerializeToString()
    return _EVENTS_TAG + _varint(len(body)) + body


def _large(value: Any) -> bool:
    """Whether a JSON value has more than LARGE_OUTPUT_ENTRIES list and map
    entries (counting stops there, so a small value costs little)."""
    if not isinstance(value, dict | list):
        return False
    entries = 0
    pending = [value]
    while pending:
        current = pending.pop()
        items = current.values() if isinstance(current, dict) else current
        entries += len(items)
        if entries > LARGE_OUTPUT_ENTRIES:
            return True
        pending.extend(v for v in items if isinstance(v, dict | list))
    return False


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
