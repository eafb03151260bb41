"""The `calculator` tool: exact arithmetic for a model, without eval.

The expression is parsed with Python's `ast` and only a whitelist of nodes is
evaluated: numbers, + - * / // % **, unary minus and plus, parentheses, the
constants `pi` and `e` and the functions abs, round, min, max and sqrt.
Anything else (names, attributes, subscripts, other calls, strings, ...) is
refused, and so are results too large to be useful (a model asking for
9**9**9 must not stall the server).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from podium.plugins.api import Tool

MAX_EXPRESSION_LENGTH = 1000
MAX_EXPONENT = 1000
# Results (and intermediate values) beyond this magnitude are refused: they
# would not survive JSON/protobuf numbers anyway.
MAX_MAGNITUDE = 10**300
MAX_ROUND_DIGITS = 100

Number = int | float

PARAMETERS: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "expression": {
            "type": "string",
            "description": (
                "An arithmetic expression, e.g. '(3 + 4) * 2 ** 10 / 7'. Operators: "
                "+ - * / // % ** and parentheses; constants pi and e; functions "
                "abs(x), round(x[, digits]), min(a, b, ...), max(a, b, ...), sqrt(x)."
            ),
            "maxLength": MAX_EXPRESSION_LENGTH,
        }
    },
    "required": ["expression"],
    "additionalProperties": False,
}


class CalculatorError(ValueError):
    """The expression is not allowed, or its value cannot be computed."""


_BINARY: Mapping[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: Mapping[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_CONSTANTS: Mapping[str, float] = {"pi": math.pi, "e": math.e}


def _round(value: Number, digits: Number | None = None) -> Number:
    if digits is None:
        return round(value)
    if not isinstance(digits, int) or abs(digits) > MAX_ROUND_DIGITS:
        raise CalculatorError(
            f"round: digits must be an integer between -{MAX_ROUND_DIGITS} and {MAX_ROUND_DIGITS}"
        )
    return round(value, digits)


def _sqrt(value: Number) -> float:
    if value < 0:
        raise CalculatorError("sqrt of a negative number")
    return math.sqrt(value)


# name -> (function, least and most arguments; None: no upper bound)
_FUNCTIONS: Mapping[str, tuple[Callable[..., Number], int, int | None]] = {
    "abs": (abs, 1, 1),
    "round": (_round, 1, 2),
    "min": (lambda *values: min(values), 1, None),
    "max": (lambda *values: max(values), 1, None),
    "sqrt": (_sqrt, 1, 1),
}


def calculate(expression: str) -> Number:
    """The value of `expression`, or raises CalculatorError."""
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise CalculatorError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
    if not expression.strip():
        raise CalculatorError("expression is empty")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as error:
        raise CalculatorError(f"invalid syntax: {error.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise CalculatorError("expression is too deeply nested or invalid") from None
    try:
        return _checked(_evaluate(tree.body))
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except OverflowError:
        raise CalculatorError("result is too large") from None
    except RecursionError:
        raise CalculatorError("expression is too deeply nested") from None


def _evaluate(node: ast.expr) -> Number:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CalculatorError(f"only numbers are allowed, not {value!r}")
        return _checked(value)
    if isinstance(node, ast.BinOp):
        binary = _BINARY.get(type(node.op))
        if binary is None:
            raise CalculatorError(f"operator {type(node.op).__name__} is not allowed")
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _checked(binary(left, right))
    if isinstance(node, ast.UnaryOp):
        unary = _UNARY.get(type(node.op))
        if unary is None:
            raise CalculatorError(f"operator {type(node.op).__name__} is not allowed")
        return _checked(unary(_evaluate(node.operand)))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise CalculatorError(f"unknown name {node.id!r}; constants: {', '.join(_CONSTANTS)}")
    if isinstance(node, ast.Call):
        return _call(node)
    raise CalculatorError(f"{type(node).__name__} is not allowed in an arithmetic expression")


def _call(node: ast.Call) -> Number:
    known = ", ".join(_FUNCTIONS)
    if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
        name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
        raise CalculatorError(f"function {name!r} is not allowed; functions: {known}")
    function, least, most = _FUNCTIONS[node.func.id]
    if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
        raise CalculatorError(f"{node.func.id}: only positional arguments are allowed")
    count = len(node.args)
    if count < least or (most is not None and count > most):
        expected = f"{least}" if least == most else f"{least} to {most or 'any number of'}"
        raise CalculatorError(f"{node.func.id} takes {expected} arguments, not {count}")
    return _checked(function(*(_evaluate(arg) for arg in node.args)))


def _check_power(base: Number, exponent: Number) -> None:
    if abs(exponent) > MAX_EXPONENT:
        raise CalculatorError(f"exponent {exponent} is too large (at most {MAX_EXPONENT})")
    # Refuse before computing: the result has about bits * exponent bits.
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and exponent > 0
        and (abs(base).bit_length() - 1) * exponent > MAX_MAGNITUDE.bit_length()
    ):
        raise CalculatorError("result is too large")


def _checked(value: Any) -> Number:
    if isinstance(value, bool) or not isinstance(value, int | float):
        # e.g. a complex number from a negative base and a fractional exponent.
        raise CalculatorError("the result is not a real number")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("result is too large" if math.isinf(value) else "result is undefined")
    if abs(value) > MAX_MAGNITUDE:
        raise CalculatorError("result is too large")
    return value


async def call(arguments: Mapping[str, Any]) -> Number:
    expression = arguments.get("expression")
    if not isinstance(expression, str):
        raise CalculatorError("`expression` must be a string")
    return calculate(expression)


CALCULATOR_TOOL = Tool(
    name="calculator",
    description=(
        "Evaluates an arithmetic expression exactly (integers stay exact) and returns the number."
    ),
    parameters=PARAMETERS,
    call=call,
)
