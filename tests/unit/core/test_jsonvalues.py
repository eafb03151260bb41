"""What agent outputs may be: JSON that every client reads back as stored
(no NaN or infinity; integers beyond ±2^53 as decimal strings), within a size limit in UTF-8
bytes, checked without encoding a huge value first."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podium.core.jsonvalues import (
    MAX_EXACT_INT,
    NotJsonCompatible,
    TooLarge,
    check_json_size,
    compact_json,
    compact_json_within,
    exceeds_json_size,
    flat_json_copy,
    json_compatible,
    json_depth,
    remember_compact_json,
    shared_compact_json,
)


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, {"n": -math.inf}],
    ids=["nan", "inf", "nested-inf"],
)
def test_what_a_double_cannot_carry_is_rejected(value: Any) -> None:
    with pytest.raises(NotJsonCompatible):
        json_compatible(value)


@given(
    # Drawn beyond the bound rather than filtered: hypothesis's health check
    # refuses a strategy that throws most of its draws away.
    st.one_of(
        st.integers(min_value=MAX_EXACT_INT + 1),
        st.integers(max_value=-MAX_EXACT_INT - 1),
    )
)
def test_integers_beyond_2_53_travel_as_decimal_strings(value: int) -> None:
    assert json_compatible({"n": [value]}) == {"n": [str(value)]}
    assert int(json_compatible(value)) == value


@given(st.integers(-MAX_EXACT_INT, MAX_EXACT_INT))
def test_integers_within_2_53_stay_integers(value: int) -> None:
    result = json_compatible({"n": value})["n"]
    assert type(result) is int and result == value


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


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_EXACT_INT, MAX_EXACT_INT)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=40,
)


@given(JSON_VALUES)
def test_the_size_check_is_exact_at_the_limit(value: Any) -> None:
    # Its early estimate never overcounts: a value exactly at the limit passes.
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    check_json_size(value, size)
    with pytest.raises(TooLarge):
        check_json_size(value, size - 1)


@given(JSON_VALUES)
def test_the_checked_encoding_is_the_stored_text_and_as_strict(value: Any) -> None:
    # A run's input is encoded once, by compact_json_within: the same text
    # and the same limit as check_json_size and the store's encoding.
    text = compact_json(value)
    size = len(text.encode())
    assert compact_json_within(value, size) == text
    with pytest.raises(TooLarge):
        compact_json_within(value, size - 1)
    # The cheap estimate never says "over" for text within the limit.
    assert not exceeds_json_size(value, len(text))


def test_the_checked_encoding_refuses_what_the_store_refuses() -> None:
    with pytest.raises(ValueError):
        compact_json_within({"n": math.nan}, 1000)
    assert exceeds_json_size({"items": list(range(1000))}, 100)


def test_a_long_list_of_numbers_is_too_large_without_being_encoded() -> None:
    # A million numbers: found over 1,000 bytes by counting, at its first thousand.
    with pytest.raises(TooLarge, match="at least"):
        check_json_size([1] * 1_000_000, 1000)


def test_a_map_met_twice_is_measured_as_json_writes_it() -> None:
    # The same map twice is written twice: the count is a lower bound, the size exact.
    shared = {"k": "v" * 50}
    pair = [shared, shared]
    size = len(json.dumps(pair, separators=(",", ":")))
    check_json_size(pair, size)
    with pytest.raises(TooLarge):
        check_json_size(pair, size - 1)


def test_a_huge_flat_map_is_too_large_without_a_walk_of_all_of_it() -> None:
    with pytest.raises(TooLarge, match="at least"):
        check_json_size({str(i): i for i in range(100_000)}, 1000)


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


@given(JSON_VALUES)
def test_depth_is_how_deeply_lists_and_maps_nest(value: Any) -> None:
    depth = depth_of(value)
    assert json_depth(value, 100) == depth
    if depth > 1:
        assert json_depth(value, depth - 2) > depth - 2  # stops early, past the limit


def test_a_value_nested_far_past_the_recursion_limit_is_measured() -> None:
    value: Any = 0
    for _ in range(5000):
        value = [value]
    assert json_depth(value, 24) == 25


FLAT_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.just("\u001f" * 3)
    | st.just("é€😀")
)


@given(st.dictionaries(st.text(max_size=6), FLAT_SCALARS, max_size=8), st.integers(0, 400))
def test_the_flat_map_shortcut_agrees_with_the_general_path(value: Any, max_bytes: int) -> None:
    # Where flat_json_copy answers, it answers what encoding and decoding would:
    # a fresh copy, within the limit. Where it cannot (a big integer, NaN, a
    # value near the limit), json_compatible's general path decides.
    flat = flat_json_copy(value, max_bytes)
    if flat is None:
        return
    assert flat is not value
    text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    assert len(text.encode()) <= max_bytes
    decoded = json.loads(text)
    assert flat == decoded
    assert [type(item) for item in flat.values()] == [type(item) for item in decoded.values()]


@pytest.mark.parametrize(
    "value",
    [
        {"n": MAX_EXACT_INT + 1},
        {"n": math.nan},
        {"n": -math.inf},
        {1: "a"},
        {"n": [1]},
        {"n": True, "m": (1,)},
        {"x": "y" * 100},
    ],
    ids=["big-int", "nan", "inf", "int-key", "list", "tuple", "near-limit"],
)
def test_the_flat_map_shortcut_leaves_the_rest_to_the_general_path(value: Any) -> None:
    assert flat_json_copy(value, 500) is None


def test_json_compatible_of_a_flat_map_still_refuses_what_json_cannot_carry() -> None:
    assert json_compatible({"n": MAX_EXACT_INT + 1, "m": 1}) == {
        "n": str(MAX_EXACT_INT + 1),
        "m": 1,
    }
    with pytest.raises(NotJsonCompatible):
        json_compatible({"n": math.nan})
    with pytest.raises(TooLarge):
        json_compatible({"x": "y" * 100}, max_bytes=50)
    assert json_compatible({1: "a"}) == {"1": "a"}


def test_the_flat_map_shortcut_answers_for_a_small_output() -> None:
    value = {"a": 1, "b": "x", "c": None, "d": 1.5, "e": False, "f": -MAX_EXACT_INT}
    copied = flat_json_copy(value, 1000)
    assert copied == value and copied is not value


def test_a_large_value_written_several_times_is_encoded_once() -> None:
    value = {"items": [{"k": i, "s": "é"} for i in range(10_000)]}
    text = shared_compact_json(value)
    assert text == compact_json(value)
    assert shared_compact_json(value) is text  # the same text, not encoded again
    check_json_size(value, len(text.encode()))  # the size check shares it too
    assert shared_compact_json(value) is text
    equal = {"items": [{"k": i, "s": "é"} for i in range(10_000)]}
    assert shared_compact_json(equal) == text  # another object: encoded on its own
    assert shared_compact_json(equal) is not text


def test_a_text_made_from_parts_serves_the_size_check_and_the_writes() -> None:
    part = {"items": [{"k": i} for i in range(10_000)]}
    whole = {"a": part, "b": 1}
    text = f'{{"a":{shared_compact_json(part)},"b":1}}'
    assert text == compact_json(whole)
    remember_compact_json(whole, text)
    assert shared_compact_json(whole) is text
    check_json_size(whole, len(text))
    with pytest.raises(TooLarge):
        check_json_size(whole, len(text) - 1)
