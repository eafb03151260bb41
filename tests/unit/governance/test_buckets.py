"""The token bucket on its own: refill, waits, refunds, pauses and clamps."""

from __future__ import annotations

import math

import pytest

from podium.governance.buckets import TokenBucket


def test_starts_full_and_refills_continuously() -> None:
    bucket = TokenBucket(rate_per_second=2.0, capacity=10.0, now=0.0)
    assert bucket.available(0.0) == 10.0
    bucket.take(10.0, 0.0)
    assert bucket.available(0.0) == 0.0
    assert bucket.available(1.5) == pytest.approx(3.0)
    assert bucket.available(100.0) == 10.0  # never above capacity


def test_can_take_and_take_checks() -> None:
    bucket = TokenBucket(1.0, 5.0, 0.0)
    assert bucket.can_take(5.0, 0.0)
    assert not bucket.can_take(5.5, 0.0)
    bucket.take(3.0, 0.0)
    with pytest.raises(ValueError):
        bucket.take(3.0, 0.0)
    assert bucket.available(0.0) == 2.0  # the refused take took nothing


def test_wait_time() -> None:
    bucket = TokenBucket(2.0, 10.0, 0.0)
    assert bucket.wait_time(4.0, 0.0) == 0.0
    bucket.take(10.0, 0.0)
    assert bucket.wait_time(4.0, 0.0) == pytest.approx(2.0)
    assert bucket.wait_time(11.0, 0.0) == math.inf
    # Waking exactly when told finds the tokens there.
    now = bucket.wait_time(3.0, 0.0)
    assert bucket.can_take(3.0, now)


def test_wait_time_float_rounding_never_loops() -> None:
    bucket = TokenBucket(1000 / 60, 1000.0, 0.0)
    now = 0.0
    for _ in range(500):
        wait = bucket.wait_time(7.0, now)
        now += wait
        assert bucket.can_take(7.0, now)
        bucket.take(7.0, now)


def test_refund_never_exceeds_capacity() -> None:
    bucket = TokenBucket(1.0, 10.0, 0.0)
    bucket.take(4.0, 0.0)
    bucket.refund(2.0, 0.0)
    assert bucket.available(0.0) == 8.0
    bucket.refund(50.0, 0.0)
    assert bucket.available(0.0) == 10.0


def test_debit_goes_below_zero_and_delays() -> None:
    bucket = TokenBucket(1.0, 10.0, 0.0)
    bucket.take(10.0, 0.0)
    bucket.debit(5.0, 0.0)
    assert bucket.available(0.0) == -5.0
    assert bucket.wait_time(1.0, 0.0) == pytest.approx(6.0)


def test_pause_blocks_until_then_refill_resumes() -> None:
    bucket = TokenBucket(1.0, 10.0, 0.0)
    bucket.take(6.0, 0.0)  # level 4
    bucket.pause_until(5.0, now=0.0)
    assert bucket.available(3.0) == 0.0
    assert not bucket.can_take(1.0, 4.9)
    assert bucket.wait_time(1.0, 2.0) == pytest.approx(3.0)
    # No refill while paused: the level is still 4 at the end of the pause.
    assert bucket.available(5.0) == pytest.approx(4.0)
    assert bucket.available(7.0) == pytest.approx(6.0)
    assert bucket.wait_time(9.0, 7.0) == pytest.approx(3.0)
    assert bucket.paused_until == 5.0


def test_pause_keeps_refill_earned_before_it() -> None:
    bucket = TokenBucket(1.0, 10.0, 0.0)
    bucket.take(10.0, 0.0)
    bucket.pause_until(8.0, now=3.0)  # 3 tokens earned before the 429
    assert bucket.available(8.0) == pytest.approx(3.0)


def test_shorter_pause_does_not_shorten_a_longer_one() -> None:
    bucket = TokenBucket(1.0, 10.0, 0.0)
    bucket.pause_until(10.0, now=0.0)
    bucket.pause_until(4.0, now=1.0)
    assert bucket.available(6.0) == 0.0


def test_clamp_lowers_never_raises() -> None:
    bucket = TokenBucket(1.0, 10.0, 0.0)
    bucket.clamp(3.0, 0.0)
    assert bucket.available(0.0) == 3.0
    bucket.clamp(8.0, 0.0)
    assert bucket.available(0.0) == 3.0


def test_reconfigure_keeps_level_capped() -> None:
    bucket = TokenBucket(1.0, 10.0, 0.0)
    bucket.take(2.0, 0.0)
    bucket.reconfigure(2.0, 5.0, 0.0)
    assert bucket.available(0.0) == 5.0
    bucket.take(5.0, 0.0)
    bucket.reconfigure(1.0, 20.0, 0.0)
    assert bucket.available(0.0) == 0.0
    assert bucket.available(3.0) == pytest.approx(3.0)


@pytest.mark.parametrize(("rate", "capacity"), [(-1.0, 1.0), (1.0, 0.0), (math.inf, 1.0)])
def test_rejects_bad_settings(rate: float, capacity: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, capacity, 0.0)


def test_a_drained_bucket_refills_from_empty() -> None:
    bucket = TokenBucket(rate_per_second=2, capacity=10, now=0)
    bucket.take(3, now=0)
    bucket.drain(now=1)
    assert bucket.available(1) == 0
    assert bucket.available(2) == 2
    assert bucket.available(100) == 10
    # A bucket in debt stays in debt: draining never adds tokens.
    bucket.take(10, now=100)
    bucket.debit(4, now=100)
    bucket.drain(now=100)
    assert bucket.available(100) < 0
