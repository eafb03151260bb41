"""The fan-out item queue with a concurrency key: whatever the keys and the
order in which items end, no key ever has more than `per_key` items running,
every item runs exactly once, and an item is never held back by a full key
that is not its own."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podium.engine.keyed import ItemQueue, KeyedItemQueue


@given(
    keys=st.lists(st.sampled_from("abcd"), min_size=1, max_size=40),
    per_key=st.integers(1, 3),
    workers=st.integers(1, 8),
    finish_order=st.randoms(use_true_random=False),
)
def test_the_per_key_limit_is_never_exceeded(
    keys: list[str], per_key: int, workers: int, finish_order: random.Random
) -> None:
    async def scenario() -> None:
        queue = KeyedItemQueue(list(enumerate(keys)), per_key)
        running: dict[str, int] = {}
        taken: list[int] = []
        releases: list[asyncio.Event] = []

        async def worker() -> None:
            while (index := await queue.take()) is not None:
                key = keys[index]
                running[key] = running.get(key, 0) + 1
                assert running[key] <= per_key
                taken.append(index)
                release = asyncio.Event()
                releases.append(release)
                await release.wait()
                running[key] -= 1
                queue.done(index)

        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        while not all(task.done() for task in tasks):
            await asyncio.sleep(0)
            waiting = [r for r in releases if not r.is_set()]
            if waiting:
                finish_order.choice(waiting).set()
        assert sorted(taken) == list(range(len(keys)))

    asyncio.run(scenario())


def test_a_full_key_does_not_hold_back_another_key() -> None:
    async def scenario() -> list[int | None]:
        queue = KeyedItemQueue([(0, "a"), (1, "a"), (2, "a"), (3, "b")], per_key=1)
        first = await queue.take()
        second = await queue.take()  # "a" is full: item 3 ("b") goes first
        waiter = asyncio.ensure_future(queue.take())
        await asyncio.sleep(0)
        assert not waiter.done()  # every key with items left is full
        queue.done(0)
        third = await waiter
        return [first, second, third]

    assert asyncio.run(scenario()) == [0, 3, 1]


def test_without_a_key_items_come_in_order() -> None:
    async def scenario() -> list[int | None]:
        queue = ItemQueue([4, 7, 9])
        return [await queue.take() for _ in range(4)]

    assert asyncio.run(scenario()) == [4, 7, 9, None]


def test_per_key_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        KeyedItemQueue([(0, "a")], per_key=0)
