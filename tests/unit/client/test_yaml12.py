"""Workflow and policy files are read as YAML 1.2: only true/false are booleans, integers are
decimal, 0o octal or 0x hexadecimal, and nothing becomes a datetime."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podium.client import load_definition
from podium.client.yaml12 import load


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # YAML 1.1 booleans that YAML 1.2 keeps as strings (the Norway problem and friends).
        ("NO", "NO"),
        ("no", "no"),
        ("yes", "yes"),
        ("Y", "Y"),
        ("on", "on"),
        ("OFF", "OFF"),
        ("true", True),
        ("False", False),
        ("TRUE", True),
        # Integers: leading zeros are decimal; sexagesimal and underscores are strings.
        ("010", 10),
        ("0o17", 15),
        ("0x1F", 31),
        ("-5", -5),
        ("+3", 3),
        ("1:30", "1:30"),
        ("1_000", "1_000"),
        ("0b101", "0b101"),
        # Floats, infinities and NaN by the core schema.
        ("1e3", 1000.0),
        (".5", 0.5),
        ("-.inf", -math.inf),
        # Null.
        ("~", None),
        ("null", None),
        ("NULL", None),
        # Timestamps stay text: the proto JSON mapping wants strings.
        ("2026-01-01", "2026-01-01"),
        ("2026-01-01T10:00:00Z", "2026-01-01T10:00:00Z"),
    ],
)
def test_plain_scalars_follow_the_core_schema(text: str, expected: object) -> None:
    assert load(f"value: {text}") == {"value": expected}


def test_nan_is_a_float() -> None:
    assert math.isnan(load("value: .nan")["value"])


def test_explicit_tags_and_merge_keys_still_work() -> None:
    document = load('a: !!int "12"\nb: !!str 12\nbase: &b {x: 1}\nc: {<<: *b, y: 2}\n')
    assert document == {"a": 12, "b": "12", "base": {"x": 1}, "c": {"x": 1, "y": 2}}


@given(st.integers(min_value=-(2**63), max_value=2**63))
def test_decimal_integers_round_trip(value: int) -> None:
    assert load(f"n: {value}") == {"n": value}


def test_a_workflow_file_keeps_a_country_code(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "workflow_id: tax\n"
        "spec:\n"
        "  steps:\n"
        "    - id: rate\n"
        "      agent: echo\n"
        "      config: {country: NO, code: 0123}\n"
    )
    request = load_definition(path)
    config = request.spec.steps[0].config
    assert config["country"] == "NO"
    assert config["code"] == 123
