"""The `cel` tool: evaluates a CEL expression over JSON data, so an LLM can
compute (filter, sum, compare) without a Python sandbox."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podium.engine.expressions import compile_expression, from_json_numbers
from podium.plugins.api import Tool

PARAMETERS: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "expression": {"type": "string", "description": "A CEL expression over `data`."},
        "data": {"description": "Any JSON value, available as `data`."},
    },
    "required": ["expression"],
    "additionalProperties": False,
}


async def evaluate(arguments: Mapping[str, Any]) -> Any:
    """Raises ExpressionError on a bad expression or a failed evaluation."""
    expression = compile_expression(str(arguments["expression"]), variables=("data",))
    return expression.evaluate({"data": from_json_numbers(arguments.get("data"))})


CEL_TOOL = Tool(
    name="cel",
    description="Evaluates a CEL expression (https://cel.dev) over `data` and returns the result.",
    parameters=PARAMETERS,
    call=evaluate,
)
