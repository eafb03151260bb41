"""The builtin calculator tool: safe arithmetic, everything else refused,
called directly as a step's ctx.call_tool would."""

from __future__ import annotations

from typing import Any

import pytest

from podium.plugins.api import Tool
from podium.plugins.builtin.calculator import CALCULATOR_TOOL, CalculatorError, calculate


async def call(tool: Tool, **arguments: Any) -> Any:
    return await tool.call(arguments)


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
