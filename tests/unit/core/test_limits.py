"""Limit settings: flags over environment over defaults, each value checked
with a one-line error naming the setting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podium.core.limits import DEFAULTS, LimitError, Limits


def test_no_setting_gives_the_defaults() -> None:
    assert Limits.from_settings({}, {}) == DEFAULTS == Limits()


def test_a_flag_wins_over_the_environment() -> None:
    env = {"PODIUM_MAX_STEPS": "50", "PODIUM_MAX_FAN_OUT_ITEMS": "7", "UNRELATED": "x"}
    limits = Limits.from_settings(env, {"max_steps": "60"})
    assert (limits.max_steps, limits.max_fan_out_items) == (60, 7)
    assert limits.max_loop_iterations == DEFAULTS.max_loop_iterations


@pytest.mark.parametrize(
    ("env", "settings", "message"),
    [
        ({"PODIUM_MAX_STEPS": "lots"}, {}, "PODIUM_MAX_STEPS must be an integer from 1 to"),
        ({"PODIUM_MAX_STEPS": "0"}, {}, "PODIUM_MAX_STEPS must be an integer from 1 to"),
        ({}, {"max_steps": "-3"}, "limit max_steps must be an integer from 1 to"),
        ({}, {"max_output_depth": "27"}, "limit max_output_depth must be an integer from 1 to 26"),
        ({}, {"max_message_bytes": str(2**31)}, "limit max_message_bytes must be an integer"),
        ({}, {"max_stpes": "5"}, "unknown limit 'max_stpes'; the limits are: max_steps,"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(
    env: dict[str, str], settings: dict[str, str], message: str
) -> None:
    with pytest.raises(LimitError) as caught:
        Limits.from_settings(env, settings)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_limits_built_in_code_are_checked_too() -> None:
    with pytest.raises(LimitError, match="max_steps"):
        Limits(max_steps=0)
    with pytest.raises(LimitError, match="max_expression_result_depth"):
        Limits(max_expression_result_depth=100)


SETTING_NAMES = st.sampled_from([*Limits.names(), "", "max", "MAX_STEPS", "max_steps "]) | st.text(
    max_size=8
)
SETTING_VALUES = (
    st.integers(-(2**40), 2**40).map(str)
    | st.sampled_from(["", " 7 ", "1e3", "0x10", "1_000", "nan", "∞", "٣"])
    | st.text(max_size=6)
)


@given(
    env=st.dictionaries(
        SETTING_NAMES.map(lambda name: "PODIUM_" + name.upper()), SETTING_VALUES, max_size=4
    ),
    settings=st.dictionaries(SETTING_NAMES, SETTING_VALUES, max_size=4),
)
def test_any_settings_give_limits_in_range_or_one_line_naming_the_setting(
    env: dict[str, str], settings: dict[str, str]
) -> None:
    try:
        limits = Limits.from_settings(env, settings)
    except LimitError as error:
        message = str(error)
        assert "\n" not in message
        assert any(name in message or repr(name) in message for name in [*settings, *env]), message
        return
    for name in Limits.names():
        assert getattr(limits, name) >= 1
    for name, text in settings.items():
        assert getattr(limits, name) == int(text)


def test_changed_lists_what_differs_from_the_defaults() -> None:
    assert DEFAULTS.changed() == {}
    assert Limits(max_steps=5, max_output_depth=3).changed() == {
        "max_steps": 5,
        "max_output_depth": 3,
    }
