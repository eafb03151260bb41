"""Which fan-out item runs next: in item order, and with a concurrency key at
most `per_key` items of one key at once (Hatchet's concurrency keys).

Pure bookkeeping, no clock and no I/O: a worker `take`s an item when it can
run one and calls `done` when it ends. An item whose key is full never holds
back an item of another key behind it."""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Iterable


class ItemQueue:
    """Items in order, no limit per key."""

    def __init__(self, indexes: Iterable[int]) -> None:
        self._pending = deque(indexes)

    async def take(self) -> int | None:
        """The next item to run, or None when none is left."""
        return self._pending.popleft() if self._pending else None

    def done(self, index: int) -> None:
        """An item taken has ended."""


class KeyedItemQueue(ItemQueue):
    """Items in order among those whose key has room: never more than
    `per_key` items of one key between their `take` and their `done`."""

    def __init__(self, keyed: Iterable[tuple[int, str]], per_key: int) -> None:
        super().__init__(())
        if per_key < 1:
            raise ValueError("per_key must be at least 1")
        self.per_key = per_key
        self._key_of: dict[int, str] = {}
        self._waiting: dict[str, deque[int]] = {}
        for index, key in keyed:
            self._key_of[index] = key
            self._waiting.setdefault(key, deque()).append(index)
        self.running: dict[str, int] = dict.fromkeys(self._waiting, 0)
        # (first waiting item, key) of each key with room and items waiting.
        self._ready = [(queue[0], key) for key, queue in self._waiting.items()]
        heapq.heapify(self._ready)
        self._left = len(self._key_of)
        self._changed = asyncio.Event()

    async def take(self) -> int | None:
        while True:
            if self._ready:
                _, key = heapq.heappop(self._ready)
                queue = self._waiting[key]
                index = queue.popleft()
                self.running[key] += 1
                self._left -= 1
                if queue and self.running[key] < self.per_key:
                    heapq.heappush(self._ready, (queue[0], key))
                return index
            if not self._left:
                return None
            # Every key with items left is full: wait for an item to end.
            self._changed.clear()
            await self._changed.wait()

    def done(self, index: int) -> None:
        key = self._key_of[index]
        was_full = self.running[key] >= self.per_key
        self.running[key] -= 1
        queue = self._waiting[key]
        if was_full and queue:
            heapq.heappush(self._ready, (queue[0], key))
        self._changed.set()
