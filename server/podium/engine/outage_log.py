"""One log line per outage, not per retry: a background loop that retries every
second while its database is unavailable would otherwise write a line (and a
traceback) every second for as long as the outage lasts.

The first failure is logged at once with its traceback; while the failures go
on, at most one line per `interval` says how many were not logged since; the
first success after a failure logs one line saying the outage ended.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["OutageLog"]

DEFAULT_INTERVAL = 60.0


class OutageLog:
    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        now: Callable[[], float],
        *,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        """`what` names the work that fails ("scheduler tick"); `now` is a
        monotonic time in seconds (the loop's clock, so tests drive it)."""
        if not interval > 0:
            raise ValueError("interval must be positive")
        self._log = logger
        self._what = what
        self._now = now
        self._interval = interval
        self._since: float | None = None  # when the outage began
        self._logged = 0.0  # when its last line was written
        self._failures = 0  # failures since the outage began
        self._suppressed = 0  # failures not logged since the last line

    @property
    def failing(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException) -> None:
        now = self._now()
        self._failures += 1
        if self._since is None:
            self._since = self._logged = now
            # The traceback once (or, for Unavailable, the handler's one line
            # ending with the error's message: telemetry.logs.OneLineUnavailable).
            self._log.error(
                "%s failed (retried; while it fails, logged once per %.0fs)",
                self._what,
                self._interval,
                exc_info=error,
            )
            return
        if now - self._logged < self._interval:
            self._suppressed += 1
            return
        self._log.error(
            "%s still failing after %.0fs (%d failures not logged since the last line): %s",
            self._what,
            now - self._since,
            self._suppressed,
            error,
        )
        self._logged = now
        self._suppressed = 0

    def succeeded(self) -> None:
        if self._since is None:
            return
        self._log.warning(
            "%s works again after %.0fs and %d failures",
            self._what,
            self._now() - self._since,
            self._failures,
        )
        self._since = None
        self._failures = self._suppressed = 0
