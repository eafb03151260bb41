"""What agent outputs may be: JSON that every client reads back as stored
(no NaN or infinity, integers within ±2^53), within a size limit in UTF-8
bytes, checked without encoding a huge value first."""

from __future__ import annotations

import math
from typing import Any

import pytest

from podium.core.jsonvalues import MAX_EXACT_INT, NotJsonCompatible, TooLarge, json_compatible


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, {"n": -math.inf}, 10**400, [MAX_EXACT_INT + 1], {"n": -(2**64)}],
    ids=["nan", "inf", "nested-inf", "10**400", "2**53+1", "-2**64"],
)
def test_what_a_double_cannot_carry_is_rejected(value: Any) -> None:
    with pytest.raises(NotJsonCompatible):
        json_compatible(value)


def test_integers_up_to_2_53_are_kept_exactly() -> None:
    value = {"max": MAX_EXACT_INT, "min": -MAX_EXACT_INT, "flag": True}
    assert json_compatible(value) == value


def test_the_limit_counts_utf8_bytes() -> None:
    assert json_compatible("é" * 40, max_bytes=100) == "é" * 40  # 82 bytes with quotes
    with pytest.raises(TooLarge, match="122 bytes as JSON, over the limit of 100 bytes"):
        json_compatible("é" * 60, max_bytes=100)


def test_a_huge_value_is_refused_before_it_is_encoded() -> None:
    with pytest.raises(TooLarge, match="at least"):
        json_compatible({"text": "x" * 10_000_000}, max_bytes=1000)


def test_a_cycle_is_refused_with_or_without_a_limit() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    for limit in (None, 100):
        with pytest.raises(NotJsonCompatible, match="Circular"):
            json_compatible(cycle, max_bytes=limit)
