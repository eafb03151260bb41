"""Plugin code (an agent, a tool) may raise anything: `guarded` turns what
is not an Exception into AgentAborted inside the task that runs it.

It must happen there: asyncio re-raises SystemExit and KeyboardInterrupt
that escape a task out of the event loop (the whole server stops serving),
and a GeneratorExit or a stray CancelledError would end the step as if it
had been cancelled, so that the run could end SUCCEEDED.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from podium.core.failures import AgentAborted

T = TypeVar("T")


async def guarded(work: Awaitable[T]) -> T:
    """Awaits `work`; a BaseException it raises becomes AgentAborted, except
    the cancellation of the current task (ours to propagate)."""
    try:
        return await work
    except asyncio.CancelledError as error:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        raise AgentAborted(error) from error
    except Exception:
        raise
    except BaseException as error:
        raise AgentAborted(error) from error
