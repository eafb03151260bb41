"""A token bucket with continuous refill, on time supplied by the caller.

The bucket never reads a clock itself: every method takes `now` (seconds on a
monotonic clock), so a caller can check and take at the same instant and tests
need no clock at all.
"""

from __future__ import annotations

import math

__all__ = ["TokenBucket"]

# Waking after exactly `wait_time` seconds must find the tokens there, whatever
# the float rounding of `rate * elapsed`; without a tolerance a waiter could
# compute a wait of 1e-13 s forever.
_TOLERANCE = 1e-9


class TokenBucket:
    """Holds up to `capacity` tokens, refilled at `rate_per_second`, full at start.

    Over any window of T seconds it hands out at most `capacity + rate * T`
    tokens: the burst it starts with plus what refills meanwhile.
    """

    def __init__(self, rate_per_second: float, capacity: float, now: float) -> None:
        _check_settings(rate_per_second, capacity)
        self._rate = rate_per_second
        self._capacity = capacity
        self._level = capacity
        self._stamp = now
        self._paused_until = -math.inf

    @property
    def rate_per_second(self) -> float:
        return self._rate

    @property
    def capacity(self) -> float:
        return self._capacity

    @property
    def paused_until(self) -> float | None:
        """The instant a provider's retry-after ends, if one was ever set."""
        return None if self._paused_until == -math.inf else self._paused_until

    def available(self, now: float) -> float:
        """Tokens that could be taken at `now` (0 while paused; negative after
        an overdraft, see `debit`)."""
        self._refill(now)
        if now < self._paused_until:
            return min(self._level, 0.0)
        return self._level

    def can_take(self, amount: float, now: float) -> bool:
        return self.available(now) + self._slack() >= amount

    def take(self, amount: float, now: float) -> None:
        """Takes `amount`; the caller checked `can_take` at the same `now`."""
        if not self.can_take(amount, now):
            raise ValueError(f"cannot take {amount} tokens: {self.available(now)} available")
        self._level = max(self._level - amount, self._floor())

    def wait_time(self, amount: float, now: float) -> float:
        """Seconds from `now` until `amount` can be taken, assuming nobody else
        takes meanwhile; `inf` if it never can (more than the capacity)."""
        if amount > self._capacity + self._slack():
            return math.inf
        if self.can_take(amount, now):
            return 0.0
        start = max(now, self._paused_until)
        deficit = amount - self._level
        if deficit <= self._slack():
            return start - now
        if self._rate <= 0:
            return math.inf
        return start - now + deficit / self._rate

    def refund(self, amount: float, now: float) -> None:
        """Gives back tokens taken but not used, never above the capacity."""
        self._refill(now)
        self._level = min(self._level + amount, self._capacity)

    def debit(self, amount: float, now: float) -> None:
        """Takes tokens used beyond what was taken, even below zero: a call
        that used more tokens than it reserved delays the next ones, so the
        rate holds on average."""
        self._refill(now)
        self._level -= amount

    def pause_until(self, until: float, now: float) -> None:
        """A provider said "retry after" at `now`: nothing is available before
        `until`.

        The level is kept, and refill stops until then: the provider's own
        bucket is what we are waiting for, not ours.
        """
        self._refill(now)
        if until > self._paused_until:
            self._paused_until = until

    def clamp(self, remaining: float, now: float) -> None:
        """A provider reported only `remaining` tokens left: lowers the level
        to that, never raises it (our own limit may be tighter)."""
        self._refill(now)
        self._level = min(self._level, remaining)

    def drain(self, now: float) -> None:
        """Empties the bucket: it refills from `now` at its rate. A restarted
        server's buckets start so, because the tokens handed out just before a
        crash are unknown: an empty start keeps every window within
        `capacity + rate * T` across the restart, whatever was taken before."""
        self._refill(now)
        self._level = min(self._level, 0.0)

    def reconfigure(self, rate_per_second: float, capacity: float, now: float) -> None:
        """New settings, same tokens: the level carries over (capped at the new
        capacity), so changing a limit never hands out a fresh burst."""
        _check_settings(rate_per_second, capacity)
        self._refill(now)
        self._rate = rate_per_second
        self._capacity = capacity
        self._level = min(self._level, capacity)

    def _refill(self, now: float) -> None:
        # Refill runs from the later of the last stamp and the end of a pause;
        # time spent paused never turns into tokens.
        start = max(self._stamp, self._paused_until)
        if now > start:
            self._level = min(self._capacity, self._level + (now - start) * self._rate)
        if now > self._stamp:
            self._stamp = now

    def _slack(self) -> float:
        return _TOLERANCE * max(1.0, self._capacity)

    def _floor(self) -> float:
        # A take within the tolerance must not leave a tiny negative level.
        return min(self._level, 0.0)


def _check_settings(rate_per_second: float, capacity: float) -> None:
    if not rate_per_second >= 0 or math.isinf(rate_per_second):
        raise ValueError(f"rate_per_second must be finite and >= 0, got {rate_per_second}")
    if not capacity > 0 or math.isinf(capacity):
        raise ValueError(f"capacity must be finite and > 0, got {capacity}")
