"""Priority with aging: the order in which waiters for one resource are served.

A waiter that began to wait at `since` (monotonic seconds) with priority `p`
has effective priority `p + waited / AGING_SECONDS`: higher priorities go
first, FIFO within a priority, and a waiter gains one level per AGING_SECONDS
so nothing starves. Every waiter ages at the same rate, so the order of two
waiters never changes while they wait: sorting on `since / AGING_SECONDS - p`
(then arrival) serves them exactly in that order. Execution slots, quota
waiters and budget waiters all use this rule.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

__all__ = ["AGING_SECONDS", "Place", "place"]

AGING_SECONDS = 10.0

_arrivals = itertools.count()


@dataclass(frozen=True, order=True, slots=True)
class Place:
    """A waiter's place in line: smaller goes first."""

    key: float
    # Ties (same key: same priority, same instant) go in arrival order.
    arrival: int


def place(priority: int, since: float) -> Place:
    """The place of a waiter of `priority` that begins to wait at `since`."""
    return Place(since / AGING_SECONDS - priority, next(_arrivals))
