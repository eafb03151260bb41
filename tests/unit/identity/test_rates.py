"""Per-tenant request rates: one tenant's flood never takes another's share."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from podium.core.clock import ManualClock
from podium.identity.rates import TenantRateLimiter


def test_a_tenant_gets_its_burst_then_waits_its_rate() -> None:
    clock = ManualClock()
    limiter = TenantRateLimiter(2.0, clock)
    assert [limiter.take("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.take("a") == 0.5
    clock.advance(0.5)
    assert limiter.take("a") == 0.0


@given(st.lists(st.sampled_from(["a", "b"]), max_size=60))
def test_tenants_do_not_share_buckets(calls: list[str]) -> None:
    clock = ManualClock()
    limiter = TenantRateLimiter(5.0, clock)
    for tenant in calls:
        limiter.take(tenant)
    untouched = "b" if "b" not in calls else "c"
    assert all(limiter.take(untouched) == 0.0 for _ in range(5))
