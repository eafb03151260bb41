"""The retry policy on its own: matching, delays and validation, no server."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from podium.core.errors import FieldViolation
from podium.core.failures import INTERRUPTED, TIMEOUT, Failure
from podium.engine.retry import (
    ALL,
    MAX_ATTEMPTS_LIMIT,
    NEVER_RETRIED,
    UNBOUNDED_CEILING,
    Retrier,
    next_delay,
    retrier_violations,
)


def no_random() -> float:
    raise AssertionError("random() drawn without FULL jitter")


def fixed(value: float) -> float:
    return value


def failure(type_: str, retryable: bool = True) -> Failure:
    return Failure(type_, "boom", retryable)


# -- matching ---------------------------------------------------------------


def test_first_matching_retrier_wins() -> None:
    policy = [
        Retrier(("RateLimited",), interval=5.0),
        Retrier(("RateLimited", "Flaky"), interval=7.0),
        Retrier((ALL,), interval=9.0),
    ]
    assert next_delay(policy, failure("RateLimited"), 1, no_random) == 5.0
    assert next_delay(policy, failure("Flaky"), 1, no_random) == 7.0


def test_first_match_decides_even_when_out_of_attempts() -> None:
    policy = [Retrier(("Flaky",), max_attempts=2), Retrier((ALL,), max_attempts=10)]
    assert next_delay(policy, failure("Flaky"), 1, no_random) == 1.0
    assert next_delay(policy, failure("Flaky"), 2, no_random) is None


@pytest.mark.parametrize("type_", ["Whatever", TIMEOUT, INTERRUPTED])
def test_all_catches_the_rest(type_: str) -> None:
    policy = [Retrier(("Flaky",), interval=3.0), Retrier((ALL,), interval=4.0)]
    assert next_delay(policy, failure(type_), 1, no_random) == 4.0


def test_no_match_is_not_retried() -> None:
    assert next_delay([Retrier(("Flaky",))], failure("Other"), 1, no_random) is None
    assert next_delay([], failure("Flaky"), 1, no_random) is None


@pytest.mark.parametrize("type_", sorted(NEVER_RETRIED))
def test_never_retried_types_whatever_the_policy(type_: str) -> None:
    policy = [Retrier((type_,)), Retrier((ALL,))]
    assert next_delay(policy, failure(type_), 1, no_random) is None


def test_never_retried_covers_the_documented_types() -> None:
    assert {
        "podium.InvalidInput",
        "podium.InvalidOutput",
        "podium.UnknownAgent",
        "podium.InvalidConfig",
        "podium.BudgetExceeded",
        "podium.Cancelled",
    } == NEVER_RETRIED


def test_non_retryable_failure_is_never_retried() -> None:
    policy = [Retrier(("Flaky",)), Retrier((ALL,))]
    assert next_delay(policy, failure("Flaky", retryable=False), 1, no_random) is None


def test_max_attempts_counts_the_first_attempt() -> None:
    policy = [Retrier((ALL,), max_attempts=3)]
    assert next_delay(policy, failure("Flaky"), 1, no_random) is not None
    assert next_delay(policy, failure("Flaky"), 2, no_random) is not None
    assert next_delay(policy, failure("Flaky"), 3, no_random) is None
    assert next_delay(policy, failure("Flaky"), 4, no_random) is None
    assert next_delay([Retrier((ALL,), max_attempts=1)], failure("X"), 1, no_random) is None


def test_attempts_made_must_be_positive() -> None:
    with pytest.raises(ValueError):
        next_delay([Retrier((ALL,))], failure("Flaky"), 0, no_random)


# -- delays -----------------------------------------------------------------


def test_exponential_growth_then_cap() -> None:
    policy = [Retrier((ALL,), interval=1.5, backoff_rate=2.0, max_interval=10.0, max_attempts=6)]
    delays = [next_delay(policy, failure("X"), n, no_random) for n in range(1, 7)]
    assert delays == [1.5, 3.0, 6.0, 10.0, 10.0, None]


def test_backoff_rate_one_is_constant() -> None:
    policy = [Retrier((ALL,), interval=2.0, backoff_rate=1.0, max_attempts=5)]
    assert [next_delay(policy, failure("X"), n, no_random) for n in range(1, 5)] == [2.0] * 4


def test_huge_exponent_does_not_overflow() -> None:
    limit = MAX_ATTEMPTS_LIMIT
    capped = Retrier((ALL,), backoff_rate=1e300, max_interval=60.0, max_attempts=limit)
    assert next_delay([capped], failure("X"), limit - 1, no_random) == 60.0
    unbounded = Retrier((ALL,), backoff_rate=1e300, max_attempts=limit)
    assert next_delay([unbounded], failure("X"), limit - 1, no_random) == UNBOUNDED_CEILING


def test_unbounded_ceiling_never_cuts_below_interval() -> None:
    long = Retrier((ALL,), interval=2 * UNBOUNDED_CEILING)
    assert next_delay([long], failure("X"), 2, no_random) == 2 * UNBOUNDED_CEILING


def test_full_jitter_scales_the_delay() -> None:
    policy = [Retrier((ALL,), interval=4.0, jitter="FULL")]
    assert next_delay(policy, failure("X"), 2, lambda: 0.25) == 2.0
    assert next_delay(policy, failure("X"), 2, lambda: 0.0) == 0.0


# -- validation -------------------------------------------------------------


def test_default_retrier_is_valid() -> None:
    assert retrier_violations([Retrier(("Flaky",)), Retrier((ALL,))], "retry") == []
    assert retrier_violations([], "retry") == []


def test_violations_name_exact_fields() -> None:
    retriers = [
        Retrier((), interval=0.0, backoff_rate=0.5, max_attempts=0),
        Retrier(("ok", ""), interval=2.0, max_interval=1.0, max_attempts=MAX_ATTEMPTS_LIMIT + 1),
        Retrier(("X",), interval=math.nan, backoff_rate=math.inf, jitter="HALF"),  # type: ignore[arg-type]
    ]
    fields = [v.field for v in retrier_violations(retriers, "steps[2].retry")]
    assert fields == [
        "steps[2].retry[0].error_equals",
        "steps[2].retry[0].interval",
        "steps[2].retry[0].backoff_rate",
        "steps[2].retry[0].max_attempts",
        "steps[2].retry[1].error_equals[1]",
        "steps[2].retry[1].max_interval",
        "steps[2].retry[1].max_attempts",
        "steps[2].retry[2].interval",
        "steps[2].retry[2].backoff_rate",
        "steps[2].retry[2].jitter",
    ]


def test_all_must_be_alone_and_last() -> None:
    retriers = [Retrier((ALL, "Flaky")), Retrier((ALL,)), Retrier(("Other",))]
    assert retrier_violations(retriers, "retry") == [
        FieldViolation("retry[0].error_equals", "'podium.All' must be the only entry"),
        FieldViolation("retry[0].error_equals", "'podium.All' is only allowed in the last retrier"),
        FieldViolation("retry[1].error_equals", "'podium.All' is only allowed in the last retrier"),
    ]


def test_infinite_max_interval_is_rejected() -> None:
    fields = [v.field for v in retrier_violations([Retrier(("X",), max_interval=math.inf)], "r")]
    assert fields == ["r[0].max_interval"]


# -- properties -------------------------------------------------------------

positive = st.floats(min_value=1e-3, max_value=1e9, allow_nan=False, allow_infinity=False)


@st.composite
def retriers(draw: st.DrawFn) -> Retrier:
    interval = draw(positive)
    max_interval = draw(st.none() | st.floats(min_value=interval, max_value=1e12))
    retrier = Retrier(
        error_equals=(ALL,),
        interval=interval,
        # Up to absurd rates, so that the power overflows within 100 attempts.
        backoff_rate=draw(st.floats(min_value=1.0, max_value=1e300)),
        max_interval=max_interval,
        max_attempts=draw(st.integers(min_value=1, max_value=MAX_ATTEMPTS_LIMIT)),
        jitter=draw(st.sampled_from(["NONE", "FULL"])),
    )
    assert retrier_violations([retrier], "r") == []
    return retrier


def expected_cap(retrier: Retrier, n: int) -> float:
    """min(ceiling, interval * backoff_rate**(n-1)), in exact-enough decimals."""
    ceiling = retrier.max_interval
    if ceiling is None:
        ceiling = max(retrier.interval, UNBOUNDED_CEILING)
    with localcontext() as context:
        context.prec = 40
        raw = Decimal(retrier.interval) * Decimal(retrier.backoff_rate) ** (n - 1)
        return ceiling if raw >= Decimal(ceiling) else float(raw)


@given(
    retriers(),
    st.integers(min_value=1, max_value=MAX_ATTEMPTS_LIMIT + 5),
    st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_delay_stays_within_the_cap(retrier: Retrier, attempts_made: int, draw: float) -> None:
    assume(attempts_made < retrier.max_attempts)
    delay = next_delay([retrier], failure("X"), attempts_made, lambda: draw)
    assert delay is not None
    assert math.isfinite(delay)
    cap = expected_cap(retrier, attempts_made)
    assert 0.0 <= delay <= cap * (1 + 1e-12)
    if retrier.jitter == "NONE":
        assert math.isclose(delay, cap, rel_tol=1e-12)
    else:
        assert math.isclose(delay, draw * cap, rel_tol=1e-12, abs_tol=1e-300)


@given(retriers(), st.sampled_from(["X", TIMEOUT, INTERRUPTED]))
def test_retries_stop_exactly_at_max_attempts(retrier: Retrier, type_: str) -> None:
    results = [
        next_delay([retrier], failure(type_), n, lambda: 0.5)
        for n in range(1, MAX_ATTEMPTS_LIMIT + 3)
    ]
    retried = [n for n, delay in enumerate(results, start=1) if delay is not None]
    assert retried == list(range(1, retrier.max_attempts))


@given(retriers(), st.integers(min_value=1, max_value=MAX_ATTEMPTS_LIMIT), st.booleans())
def test_unretryable_never_retried(retrier: Retrier, attempts_made: int, named: bool) -> None:
    type_ = sorted(NEVER_RETRIED)[attempts_made % len(NEVER_RETRIED)]
    policy = [Retrier((type_,)), retrier] if named else [retrier]
    assert next_delay(policy, failure(type_), attempts_made, lambda: 0.5) is None
    assert next_delay(policy, failure("X", retryable=False), attempts_made, lambda: 0.5) is None
