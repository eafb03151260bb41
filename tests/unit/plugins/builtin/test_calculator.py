"""The builtin tools: calculator (safe arithmetic), json_query (CEL over
JSON) and current_time, called directly as a step's ctx.call_tool would."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import pytest

from podium.core.expressions import ExpressionError
from podium.plugins.api import Tool
from podium.plugins.builtin.calculator import CALCULATOR_TOOL, CalculatorError, calculate
from podium.plugins.builtin.current_time import (
    CURRENT_TIME_TOOL,
    TimeZoneError,
    current_time_tool,
)
from podium.plugins.builtin.json_query import JSON_QUERY_TOOL, JsonQueryError
from podium.plugins.manager import load_plugins

BUILTIN_TOOLS = ("calculator", "json_query", "current_time")


async def call(tool: Tool, **arguments: Any) -> Any:
    return await tool.call(arguments)


# registration and schemas


def test_builtin_tools_are_registered_and_cel_is_gone() -> None:
    names = load_plugins(include_entry_points=False).registry.tool_names
    assert set(BUILTIN_TOOLS) <= set(names)
    assert "cel" not in names


@pytest.mark.parametrize("tool", [CALCULATOR_TOOL, JSON_QUERY_TOOL, CURRENT_TIME_TOOL])
def test_each_tool_has_an_object_schema(tool: Tool) -> None:
    assert tool.name in BUILTIN_TOOLS
    assert tool.description
    schema = tool.parameters
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema.get("required", [])) <= set(schema["properties"])
    for spec in schema["properties"].values():
        assert spec["description"]


# calculator


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("2 ** 10", 1024),
        ("2 ** -1", 0.5),
        ("-2 ** 2", -4),
        ("(-2) ** 2", 4),
        ("--3", 3),
        ("+4", 4),
        ("1.5 * 4", 6.0),
        ("abs(-5)", 5),
        ("round(2.675, 2)", 2.67),
        ("round(7.6)", 8),
        ("min(3, 1, 2)", 1),
        ("max(3, 1, 2)", 3),
        ("max(4)", 4),
        ("sqrt(16)", 4.0),
        ("  12345678901234567890 * 10  ", 123456789012345678900),
        ("10 ** 300", 10**300),
    ],
)
def test_calculator_computes(expression: str, value: Any) -> None:
    result = calculate(expression)
    assert result == value
    assert type(result) is type(value)


def test_calculator_knows_pi_and_e() -> None:
    assert calculate("round(pi, 4)") == 3.1416
    assert calculate("round(e, 3)") == 2.718


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("1 / 0", "division by zero"),
        ("1 // 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("2 ** 1001", "exponent"),
        ("9 ** 9 ** 9", "exponent"),
        ("10 ** 301", "too large"),
        ("(10 ** 200) ** 2", "too large"),
        ("1e308 * 10", "too large"),
        ("10.0 ** 400", "too large"),
        ("(10 ** 300) ** 1.5", "too large"),
        ("(-8) ** 0.5", "not a real number"),
        ("sqrt(-1)", "negative"),
        ("round(1, 1000)", "digits"),
        ("round(1, 0.5)", "digits"),
        ("x + 1", "unknown name 'x'"),
        ("__builtins__", "unknown name"),
        ("(1).real", "Attribute"),
        ("().__class__.__bases__", "Attribute"),
        ("pi.__class__", "Attribute"),
        ("__import__('os').system('true')", "not allowed"),
        ("open('/etc/passwd')", "function 'open' is not allowed"),
        ("eval('1')", "function 'eval' is not allowed"),
        ("pow(2, 3)", "function 'pow' is not allowed"),
        ("math.sqrt(4)", "function 'math.sqrt' is not allowed"),
        ("abs(x=1)", "positional"),
        ("max(*[1, 2])", "positional"),
        ("abs()", "takes 1 arguments, not 0"),
        ("sqrt(1, 2)", "takes 1 arguments, not 2"),
        ("min()", "takes 1 to any number of arguments"),
        ("'a' * 3", "only numbers"),
        ("True + 1", "only numbers"),
        ("None", "only numbers"),
        ("1j * 1j", "only numbers"),
        ("[1, 2]", "List"),
        ("(1, 2)", "Tuple"),
        ("1 < 2", "Compare"),
        ("1 if 1 else 2", "IfExp"),
        ("lambda: 1", "Lambda"),
        ("[x for x in (1,)]", "ListComp"),
        ("1 & 3", "BitAnd"),
        ("1 << 3", "LShift"),
        ("~1", "Invert"),
        ("not 1", "Not"),
        ("1 +", "invalid syntax"),
        ("import os", "invalid syntax"),
        ("", "empty"),
        ("1" * 1001, "longer than"),
    ],
)
def test_calculator_rejects(expression: str, reason: str) -> None:
    with pytest.raises(CalculatorError) as error:
        calculate(expression)
    assert reason in str(error.value)


async def test_calculator_tool_reads_its_arguments() -> None:
    assert await call(CALCULATOR_TOOL, expression="6 * 7") == 42
    for bad in ({}, {"expression": 42}, {"expression": None}):
        with pytest.raises(CalculatorError, match="must be a string"):
            await CALCULATOR_TOOL.call(bad)


# json_query


DATA = {
    "items": [
        {"name": "pen", "price": 1.5, "qty": 10},
        {"name": "book", "price": 12.0, "qty": 2},
        {"name": "lamp", "price": 30.0, "qty": 1},
    ],
    "currency": "EUR",
}


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("data.items.size()", 3),
        ("data.items.filter(i, i.price > 10.0).map(i, i.name)", ["book", "lamp"]),
        ("data.items.exists(i, i.name == 'lamp')", True),
        ("data.currency + '!'", "EUR!"),
        ("data.items[1].qty * 3", 6),  # JSON's 2.0 is the integer 2 for CEL
        ("{'n': data.items.size(), 'first': data.items[0].name}", {"n": 3, "first": "pen"}),
    ],
)
async def test_json_query_evaluates_cel_over_data(expression: str, value: Any) -> None:
    assert await call(JSON_QUERY_TOOL, data=DATA, expression=expression) == value


async def test_json_query_data_may_be_any_json_value_or_absent() -> None:
    assert await call(JSON_QUERY_TOOL, data=[1, 2, 3], expression="data.filter(x, x > 1)") == [
        2,
        3,
    ]
    assert await call(JSON_QUERY_TOOL, data="abc", expression="data.upperAscii()") == "ABC"
    assert await call(JSON_QUERY_TOOL, expression="data == null") is True


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"data": DATA, "expression": "data.items.size( +"}, ExpressionError),
        ({"data": DATA, "expression": "input.x"}, ExpressionError),  # only `data` is in scope
        ({"data": DATA, "expression": "data.missing.key"}, ExpressionError),
        ({"data": DATA, "expression": "1 / 0"}, ExpressionError),
        ({"data": DATA, "expression": ""}, ExpressionError),
        ({"data": DATA}, JsonQueryError),
        ({"data": DATA, "expression": 3}, JsonQueryError),
        ({"data": DATA, "expression": "1 + " * 1000 + "1"}, JsonQueryError),
    ],
)
async def test_json_query_reports_bad_expressions(
    arguments: Mapping[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        await JSON_QUERY_TOOL.call(arguments)


# current_time

NOON_UTC = datetime.datetime(2025, 7, 14, 12, 0, 30, tzinfo=datetime.UTC)
PINNED = current_time_tool(lambda: NOON_UTC)


async def test_current_time_defaults_to_utc() -> None:
    for arguments in ({}, {"timezone": None}, {"timezone": "UTC"}):
        assert await PINNED.call(arguments) == {
            "time": "2025-07-14T12:00:30+00:00",
            "timezone": "UTC",
            "utc_offset": "+00:00",
            "weekday": "Monday",
        }


@pytest.mark.parametrize(
    ("zone", "time", "offset"),
    [
        ("Europe/Paris", "2025-07-14T14:00:30+02:00", "+02:00"),
        ("America/New_York", "2025-07-14T08:00:30-04:00", "-04:00"),
        ("Asia/Kolkata", "2025-07-14T17:30:30+05:30", "+05:30"),
    ],
)
async def test_current_time_in_a_zone(zone: str, time: str, offset: str) -> None:
    result = await call(PINNED, timezone=zone)
    assert result["time"] == time
    assert result["timezone"] == zone
    assert result["utc_offset"] == offset
    parsed = datetime.datetime.fromisoformat(result["time"])
    assert parsed == NOON_UTC


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe/", "../etc/passwd", "", "  ", 5])
async def test_current_time_rejects_an_invalid_zone(zone: Any) -> None:
    with pytest.raises(TimeZoneError):
        await call(PINNED, timezone=zone)


async def test_current_time_reads_the_clock() -> None:
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    result = await call(CURRENT_TIME_TOOL, timezone="Europe/Paris")
    after = datetime.datetime.now(datetime.UTC)
    assert before <= datetime.datetime.fromisoformat(result["time"]) <= after
