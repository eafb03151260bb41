"""The builtin json_query tool: CEL over JSON data, called as a step's
ctx.call_tool would."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from podium.core.expressions import ExpressionError
from podium.plugins.api import Tool
from podium.plugins.builtin.json_query import JSON_QUERY_TOOL, JsonQueryError


async def test_json_query_tool_evaluates_over_data() -> None:
    result = await JSON_QUERY_TOOL.call(
        {"expression": "data.filter(x, x > 1).size()", "data": [1, 2, 3]}
    )
    assert result == 2


async def call(tool: Tool, **arguments: Any) -> Any:
    return await tool.call(arguments)


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
