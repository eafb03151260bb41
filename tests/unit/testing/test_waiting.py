"""eventually() (podium.testing.waiting): polls a sync or async condition
until it holds, and names what it waited for when it gives up."""

from __future__ import annotations

import itertools

import pytest

from podium.testing import eventually


async def test_it_polls_a_sync_or_an_async_condition() -> None:
    calls = itertools.count(1)
    await eventually(lambda: next(calls) >= 3)
    assert next(calls) == 4

    async def ready() -> bool:
        return next(calls) >= 6

    await eventually(ready)
    assert next(calls) == 7


async def test_it_gives_up_naming_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match=r"not met within 0\.05 s: the moon"):
        await eventually(lambda: False, timeout=0.05, what="the moon")
