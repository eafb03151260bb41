"""A watchdog of the event loop: says who blocked it, and for how long.

Every RPC and every step share one event loop, so an agent that blocks it (a
plugin calling `time.sleep` or doing heavy work without awaiting) stalls the
whole server. Nothing on the loop can notice while it is blocked, hence a
thread: it posts a heartbeat to the loop every `interval` and, when one goes
unanswered for `threshold`, looks at what the loop thread is executing. The
agent call on the loop thread's stack (StepRunner._call, whose locals name the
run, the step, the item and the agent) is the culprit; other code is named by
its task and innermost frame.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from types import FrameType

from podium.engine.step_runner import StepRunner

log = logging.getLogger("podium.watchdog")

DEFAULT_THRESHOLD = 0.5
_AGENT_CALL = StepRunner._call.__code__


class LoopWatchdog:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        threshold: float = DEFAULT_THRESHOLD,
        interval: float | None = None,
    ) -> None:
        self._loop = loop
        self._threshold = threshold
        self._interval = interval if interval is not None else threshold / 5
        self._beat = time.monotonic()
        self._stopped = threading.Event()
        self._loop_thread = threading.get_ident()  # constructed on the loop's thread
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _heartbeat(self) -> None:
        self._beat = time.monotonic()

    def _watch(self) -> None:
        blocked_by: str | None = None
        while not self._stopped.wait(self._interval):
            posted = time.monotonic()
            try:
                self._loop.call_soon_threadsafe(self._heartbeat)
            except RuntimeError:  # the loop is closed
                return
            # Wait for the beat (or until the loop has been silent for `threshold`).
            while True:
                stopping = self._stopped.wait(self._interval / 2)
                if self._beat >= posted:
                    break
                if stopping:
                    return
                lag = time.monotonic() - posted
                if lag >= self._threshold and blocked_by is None:
                    blocked_by = self._culprit()
                    log.warning("event loop blocked for %.2f s so far by %s", lag, blocked_by)
            if blocked_by is not None:
                log.warning(
                    "event loop was blocked for %.2f s by %s",
                    self._beat - posted,
                    blocked_by,
                )
                blocked_by = None

    def _culprit(self) -> str:
        frame = sys._current_frames().get(self._loop_thread)
        task = asyncio.current_task(self._loop) if frame is not None else None
        innermost = frame
        if innermost is None:
            return "an idle loop"
        # The innermost frame says what blocks: the agent's own code (time.sleep
        # called there) or Podium's around it.
        where = _location(innermost)
        while frame is not None:
            if frame.f_code is _AGENT_CALL:
                return f"{_describe_agent_call(frame)} at {where}"
            frame = frame.f_back
        return f"task {task.get_name() if task else '-'} at {where}"


def _describe_agent_call(frame: FrameType) -> str:
    runner = frame.f_locals.get("self")
    item = frame.f_locals.get("item", -1)
    if not isinstance(runner, StepRunner):
        return f"an agent call at {_location(frame)}"
    where = f"run {runner.journal.run.run_id}, step {runner.step.step_id}"
    if item != -1:
        where += f", item {item}"
    return f"agent {runner.spec.agent!r} ({where})"


def _location(frame: FrameType) -> str:
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
