"""Per-tenant request rates: a token bucket per tenant (rate per second, a
burst of as many), so one tenant's flood never takes another's share."""

from __future__ import annotations

from dataclasses import dataclass

from podium.core.clock import Clock


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TenantRateLimiter:
    def __init__(self, rate: float, clock: Clock, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("the request rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, tenant: str) -> float:
        """0 when the request may go; else the seconds until it could."""
        now = self._clock.monotonic()
        bucket = self._buckets.get(tenant)
        if bucket is None:
            bucket = self._buckets[tenant] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        # The tolerance absorbs float rounding of a caller that waited exactly the time told.
        if bucket.tokens >= 1.0 - 1e-5:
            bucket.tokens = max(0.0, bucket.tokens - 1.0)
            return 0.0
        return (1.0 - bucket.tokens) / self.rate
