"""Retry policies: whether a failed step runs again, and how long it waits first.

The semantics are those of AWS Step Functions' `Retry` field: retriers are
tried in order, the first whose error_equals names the failure decides alone,
and "podium.All" (Step Functions' States.ALL) names every failure that a retry
could ever fix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from podium.core.errors import FieldViolation
from podium.core.failures import CANCELLED, INVALID_INPUT, INVALID_OUTPUT, UNKNOWN_AGENT, Failure

ALL = "podium.All"

# Failures that are the same on every attempt (bad input, bad config, a spent
# budget, a cancel): retrying only burns time and money, so no policy can ask
# for it, not even by naming the type.
NEVER_RETRIED = frozenset(
    {
        INVALID_INPUT,
        INVALID_OUTPUT,
        UNKNOWN_AGENT,
        "podium.InvalidConfig",
        "podium.BudgetExceeded",
        CANCELLED,
    }
)

# As in Step Functions, a policy cannot keep a step going forever.
MAX_ATTEMPTS_LIMIT = 100

# Without max_interval the delay would grow without bound (and a float power
# overflows long before 100 attempts at a large backoff_rate); a day is longer
# than any sensible wait, yet it never cuts below the interval that was asked for.
UNBOUNDED_CEILING = 24 * 3600.0

Jitter = Literal["NONE", "FULL"]
_JITTERS: tuple[str, ...] = get_args(Jitter)


@dataclass(frozen=True, slots=True)
class Retrier:
    """One rule of a retry policy; durations are in seconds."""

    error_equals: tuple[str, ...]
    interval: float = 1.0
    backoff_rate: float = 2.0
    max_interval: float | None = None
    # Attempts in all, the first included: 1 means never retry.
    max_attempts: int = 3
    jitter: Jitter = "NONE"


def is_retryable(failure: Failure) -> bool:
    return failure.retryable and failure.type not in NEVER_RETRIED


def matching_retrier(policy: Sequence[Retrier], failure: Failure) -> Retrier | None:
    """The retrier that decides about `failure`: the first that names it, if any."""
    if not is_retryable(failure):
        return None
    for retrier in policy:
        if failure.type in retrier.error_equals or ALL in retrier.error_equals:
            return retrier
    return None


def next_delay(
    policy: Sequence[Retrier],
    failure: Failure,
    attempts_made: int,
    random: Callable[[], float],
) -> float | None:
    """Seconds to wait before the next attempt, or None to give up.

    attempts_made counts every attempt of the step so far, interrupted ones
    included, so that a crash loop cannot retry a step forever. `random` draws
    from [0, 1) and is only called for FULL jitter. The policy must be valid
    (no retrier_violations).
    """
    if attempts_made < 1:
        raise ValueError(f"attempts_made must be at least 1, got {attempts_made}")
    retrier = matching_retrier(policy, failure)
    # Only the first match counts, even when it has no attempts left: a later,
    # broader retrier must not revive what a specific one has given up on.
    if retrier is None or attempts_made >= retrier.max_attempts:
        return None
    delay = _capped_delay(retrier, attempts_made)
    if retrier.jitter == "FULL":
        delay *= random()
    return delay


def _capped_delay(retrier: Retrier, retry_number: int) -> float:
    ceiling = retrier.max_interval
    if ceiling is None:
        ceiling = max(retrier.interval, UNBOUNDED_CEILING)
    try:
        raw = retrier.interval * retrier.backoff_rate ** (retry_number - 1)
    except OverflowError:  # float ** raises rather than returning inf
        return ceiling
    return min(raw, ceiling)


def retrier_violations(retriers: Sequence[Retrier], field: str) -> list[FieldViolation]:
    """Everything wrong with a retry policy, each violation naming its field."""
    violations: list[FieldViolation] = []

    def add(path: str, description: str) -> None:
        violations.append(FieldViolation(path, description))

    last = len(retriers) - 1
    for i, retrier in enumerate(retriers):
        at = f"{field}[{i}]"
        if not retrier.error_equals:
            add(f"{at}.error_equals", "must name at least one failure type")
        for j, name in enumerate(retrier.error_equals):
            if not isinstance(name, str) or not name:
                add(f"{at}.error_equals[{j}]", "must be a non-empty string")
        if ALL in retrier.error_equals:
            # A catch-all beside other names or before other retriers would
            # make them dead rules; Step Functions rejects both, so do we.
            if len(retrier.error_equals) > 1:
                add(f"{at}.error_equals", f"{ALL!r} must be the only entry")
            if i != last:
                add(f"{at}.error_equals", f"{ALL!r} is only allowed in the last retrier")
        # `not x > 0` rather than `x <= 0` so that NaN is rejected too.
        if not (math.isfinite(retrier.interval) and retrier.interval > 0):
            add(f"{at}.interval", "must be positive")
        if not (math.isfinite(retrier.backoff_rate) and retrier.backoff_rate >= 1.0):
            add(f"{at}.backoff_rate", "must be at least 1.0")
        if retrier.max_interval is not None and not (
            math.isfinite(retrier.max_interval) and retrier.max_interval >= retrier.interval
        ):
            add(f"{at}.max_interval", "must be at least interval")
        if not 1 <= retrier.max_attempts <= MAX_ATTEMPTS_LIMIT:
            add(f"{at}.max_attempts", f"must be between 1 and {MAX_ATTEMPTS_LIMIT}")
        if retrier.jitter not in _JITTERS:
            add(f"{at}.jitter", f"must be one of {', '.join(_JITTERS)}")
    return violations
