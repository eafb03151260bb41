"""Who logs a refusal for a lost database.

The PostgreSQL store logs one line per query it refuses because the database is
gone (`refused: lost the database ...`): one line per request for RPCs. A
background loop that retries every second reports its failures itself, once a
minute (podium.engine.outage_log); its reads run under `reported_by_caller()`
so that the store does not add a line per retry. A context variable, so that
only the awaits inside the block are concerned (not other tasks).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["caller_reports", "reported_by_caller"]

_reported_by_caller: ContextVar[bool] = ContextVar("podium_refusals_reported", default=False)


@contextmanager
def reported_by_caller() -> Iterator[None]:
    """Within the block, a refusal is the caller's to log."""
    token = _reported_by_caller.set(True)
    try:
        yield
    finally:
        _reported_by_caller.reset(token)


def caller_reports() -> bool:
    return _reported_by_caller.get()
