"""Waiting for the server to get somewhere, without assuming how fast it is.

A test never sleeps "long enough" and then asserts: on a busy machine any
such guess is eventually too short. It polls for the state it needs instead,
and gives up only after HANG_TIMEOUT, a ceiling no healthy run comes near,
whose only purpose is to fail a hung test rather than hang the suite.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

__all__ = ["HANG_TIMEOUT", "POLL_INTERVAL", "eventually"]

HANG_TIMEOUT = 60.0
# Short enough to add no noticeable latency to a test, long enough that the
# server's loop (the same loop, in-process) gets the time it needs.
POLL_INTERVAL = 0.005


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = HANG_TIMEOUT,
    what: str = "",
) -> None:
    """Polls `condition` (a function returning a bool, or an awaitable of
    one) until it holds; AssertionError naming `what` after `timeout` real
    seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"not met within {timeout:g} s: {what or condition}")
        await asyncio.sleep(POLL_INTERVAL)
