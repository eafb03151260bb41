"""The `json_query` tool: evaluates a CEL expression over a JSON value, so a
model can filter, sum and compare data exactly without a Python sandbox."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from podium.core.expressions import Expression, compile_expression
from podium.core.jsonvalues import from_json_numbers
from podium.plugins.api import Tool

MAX_EXPRESSION_LENGTH = 2000

PARAMETERS: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "data": {"description": "Any JSON value, available to the expression as `data`."},
        "expression": {
            "type": "string",
            "description": (
                "A CEL expression (https://cel.dev) over `data`, e.g. "
                '"data.items.filter(i, i.price > 10).map(i, i.name)" or '
                '"data.items.size()".'
            ),
            "maxLength": MAX_EXPRESSION_LENGTH,
        },
    },
    "required": ["expression"],
    "additionalProperties": False,
}


class JsonQueryError(ValueError):
    """The arguments are not a CEL expression and a JSON value."""


@functools.lru_cache(maxsize=256)
def _compiled(source: str) -> Expression:
    # Raises ExpressionError, which is not cached.
    return compile_expression(source, variables=("data",))


async def query(arguments: Mapping[str, Any]) -> Any:
    """Raises ExpressionError on a bad expression or a failed evaluation."""
    expression = arguments.get("expression")
    if not isinstance(expression, str):
        raise JsonQueryError("`expression` must be a string")
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise JsonQueryError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
    return _compiled(expression).evaluate({"data": from_json_numbers(arguments.get("data"))})


JSON_QUERY_TOOL = Tool(
    name="json_query",
    description="Evaluates a CEL expression over `data` (any JSON value) and returns the result.",
    parameters=PARAMETERS,
    call=query,
)
