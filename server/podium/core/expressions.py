"""CEL expressions: compiled once per workflow version, evaluated per step.

We use Google's cel-expr-python (the C++ runtime behind a Python binding): it
type-checks references at compile time and evaluates a typical condition in a
few microseconds, which keeps expression evaluation off the per-step budget.
"""

from __future__ import annotations

import base64
import datetime
import difflib
import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from google.type import decimal_pb2

from podium.core import limits
from podium.core.jsonvalues import MAX_EXACT_INT, NotJsonCompatible

if TYPE_CHECKING:
    from cel_expr_python import cel

# Variables every expression of a step's input or a run's output may use.
STEP_SCOPE = ("input", "steps")


class ExpressionError(Exception):
    """A CEL expression failed to compile or to evaluate."""


class Expression:
    """A compiled CEL expression."""

    __slots__ = ("_program", "source")

    def __init__(self, source: str, program: cel.Expression) -> None:
        self.source = source
        self._program = program

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """Evaluates to a JSON-compatible Python value, or raises ExpressionError."""
        try:
            value = self._program.eval(data=variables)
        # cel-cpp reports some faults by raising (its iteration budget, for
        # one, is a RuntimeError), not as an error value: both are the
        # expression's failure, never the caller's crash.
        except (RuntimeError, ValueError, TypeError, OverflowError, MemoryError) as error:
            raise ExpressionError(f"{self.source!r}: {_first_error_line(str(error))}") from None
        if value.type() == _cel_error_type:
            raise ExpressionError(f"{self.source!r}: {value}")
        plain = value.plain_value()
        limit = limits.current()
        max_size, max_depth = limit.max_expression_result_size, limit.max_expression_result_depth
        size, depth = result_shape(plain, max_size, max_depth)
        if size > max_size:
            raise ExpressionError(
                f"{self.source!r}: result is larger than {max_size} "
                "(max_expression_result_size: characters plus list and map entries)"
            )
        if depth > max_depth:
            # Deeper values would exhaust the recursion of their conversion
            # (a loop feeding `previous` back into its output nests one level
            # per iteration).
            raise ExpressionError(
                f"{self.source!r}: result nests lists and maps deeper than "
                f"{max_depth} levels (max_expression_result_depth)"
            )
        try:
            return to_json_value(plain)
        except (NotJsonCompatible, ValueError, OverflowError, RecursionError) as error:
            raise ExpressionError(f"{self.source!r} gave {error}") from None


def result_shape(value: Any, max_size: int, max_depth: int) -> tuple[int, int]:
    """(size, depth) of `value`: characters of strings and bytes plus entries of
    lists and maps, and how deeply lists and maps nest. Counted without recursion
    and only until past either limit (the rest is not looked at)."""
    size = depth = 0
    pending = [(value, 0)]
    while pending and size <= max_size and depth <= max_depth:
        item, level = pending.pop()
        depth = max(depth, level)
        if isinstance(item, str | bytes):
            size += len(item)
        elif isinstance(item, list):
            size += len(item)
            pending.extend((entry, level + 1) for entry in item)
        elif isinstance(item, dict):
            size += len(item)
            pending.extend((key, level + 1) for key in item)
            pending.extend((entry, level + 1) for entry in item.values())
        else:
            size += 1
    return size, depth


_ENVS: dict[tuple[str, ...], cel.Env] = {}
# cel.Type.ERROR, once the first environment is made: cel-expr-python (its C++
# runtime is about 12 MB resident) is imported by the first compilation, not
# with this module, so that a server with nothing to evaluate never loads it.
_cel_error_type: Any = None


def _env(variables: Iterable[str]) -> cel.Env:
    global _cel_error_type
    key = tuple(sorted(variables))
    env = _ENVS.get(key)
    if env is None:
        from cel_expr_python import cel
        from cel_expr_python.ext import ext_encoders, ext_math, ext_strings
        from google.protobuf import descriptor_pool

        from podium.core import decimals  # CEL's decimal functions import CEL too

        _cel_error_type = cel.Type.ERROR
        env = cel.NewEnv(
            descriptor_pool.Default(),  # where google.type.Decimal, the decimal type, is
            variables={name: cel.Type.DYN for name in key},
            # The standard extensions users of CEL expect: strings
            # (upperAscii, join, format, ...), math (greatest, least, ...),
            # base64 encoders; and Podium's exact decimals (core/decimals.py).
            extensions=[
                ext_strings.ExtStrings(),
                ext_math.ExtMath(),
                ext_encoders.ExtEncoders(),
                decimals.extension(),
            ],
        )
        _ENVS[key] = env
    return env


def compile_expression(source: str, variables: Iterable[str] = STEP_SCOPE) -> Expression:
    """Compiles `source` with the given variables in scope, or raises ExpressionError."""
    if not source.strip():
        raise ExpressionError("expression is empty")
    try:
        program = _env(variables).compile(source)
    except RuntimeError as error:
        raise ExpressionError(_first_error_line(str(error))) from None
    growth, max_growth = string_growth(source), limits.current().max_expression_growth
    if growth > max_growth:
        raise ExpressionError(
            f"its replace() calls can multiply a string's length by {growth}, more than "
            f"{max_growth} (max_expression_growth)"
        )
    return Expression(source, program)


_LITERAL = r"(?:'((?:\\.|[^'\\])*)'|\"((?:\\.|[^\"\\])*)\")"
_REPLACE = re.compile(r"\.replace\(\s*" + _LITERAL + r"\s*,\s*" + _LITERAL + r"\s*[,)]")


def string_growth(source: str) -> int:
    """How many times the expression's replace() calls with literal arguments can
    multiply a string's length, at most: an empty pattern inserts the replacement
    around every character. CEL offers no cost limit to set, and evaluation runs
    to completion inside cel-cpp, so the growth is bounded before it runs (the
    result's size is checked after)."""
    growth = 1
    for old_a, old_b, new_a, new_b in _REPLACE.findall(source):
        old, new = old_a or old_b, new_a or new_b
        growth *= len(new) + 1 if not old else max(1, -(-len(new) // len(old)))
    return growth


def _first_error_line(message: str) -> str:
    # cel-cpp prefixes "INVALID_ARGUMENT: ERROR: <input>:1:5: ..." and appends a
    # caret diagram; keep the sentence a user can act on.
    line = message.splitlines()[0] if message else "invalid expression"
    located = _LOCATED.match(line)
    if located is None:
        return line.strip()
    row, column, text = int(located["line"]), int(located["column"]), located["text"].strip()
    where = f"at column {column}" if row == 1 else f"at line {row} column {column}"
    return f"{where}: {_plain_words(text)}"


_LOCATED = re.compile(r"^(?:[A-Z_]+: )?ERROR: <input>:(?P<line>\d+):(?P<column>\d+): (?P<text>.*)$")
# ANTLR's parser messages, as cel-cpp passes them on.
_SYNTAX = re.compile(r"^Syntax error: (?P<kind>[a-z ]+?)(?: at)?(?: input)?:? '(?P<token>.*?)'")
_EXPECTING = re.compile(r"expecting (?P<what>'[^']*'|[A-Z_<>]+)$")
_UNDECLARED = re.compile(r"^undeclared reference to '(?P<name>[^']*)' \(in container ''\)$")


def _plain_words(text: str) -> str:
    """A parser's or checker's message in words for a workflow author: what is wrong, not
    which grammar tokens could have come next."""
    syntax = _SYNTAX.match(text)
    if syntax is not None:
        token, kind = syntax["token"], syntax["kind"]
        if token == "<EOF>":
            return "the expression ends too early (an operand or a closing bracket is missing)"
        if kind == "token recognition error":
            return f"cannot read {token!r} (an unterminated string or a stray character?)"
        single = _EXPECTING.search(text)
        expected = f", expected {single['what']}" if single and single["what"] != "<EOF>" else ""
        return f"unexpected {token!r}{expected}"
    undeclared = _UNDECLARED.match(text)
    if undeclared is not None:
        name = undeclared["name"]
        return f"unknown name {name!r}" + _suggestion(name.split(".", 1)[0])
    overload = _NO_OVERLOAD.match(text)
    if overload is not None:
        # `_+_` is how CEL names the operator `+`.
        name = overload["function"]
        function = _UNARY.get(name) or re.sub(r"^_(.+)_$", r"\1", name)
        return f"{function!r} cannot be applied to {overload['arguments']}"
    return text


_UNARY = {"!_": "!", "-_": "-"}
_NO_OVERLOAD = re.compile(
    r"^found no matching overload for '(?P<function>[^']*)' applied to '(?P<arguments>.*)'$"
)


# Names every expression may start from, whatever its scope (the scope's own are added by the
# message's reader: a suggestion only needs the common ones).
_KNOWN_ROOTS = ("input", "steps", "item", "index", "previous", "output", "now")


def _suggestion(root: str) -> str:
    close = difflib.get_close_matches(root, _KNOWN_ROOTS, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close and close[0] != root else ""


_STRING_LITERAL = re.compile(
    r"'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"", re.S
)
_STEP_FIELD = re.compile(r"(?<![\w.])steps\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
_STEP_INDEX = re.compile(r"(?<![\w.])steps\s*\[\s*(?:'([^'\\]*)'|\"([^\"\\]*)\")\s*\]")
_STEP_ANY = re.compile(r"(?<![\w.])steps\b")


def step_references(source: str) -> set[str] | None:
    """The step ids an expression reads through `steps`, or None if it reads
    `steps` in a way that cannot be resolved statically (e.g. steps[x])."""
    referenced = {a or b for a, b in _STEP_INDEX.findall(source)}
    without_indexing = _STEP_INDEX.sub("_", source)
    without_strings = _STRING_LITERAL.sub("''", without_indexing)
    referenced.update(_STEP_FIELD.findall(without_strings))
    remaining = _STEP_FIELD.sub("_", without_strings)
    if _STEP_ANY.search(remaining):
        return None
    return referenced


def to_json_value(value: Any) -> Any:
    """Turns a CEL plain value into what JSON (and google.protobuf.Value) can
    hold (an integer beyond ±2^53 as its decimal string), or raises
    NotJsonCompatible (NaN, infinity)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotJsonCompatible(f"{value}, a number JSON cannot hold")
        return value
    if isinstance(value, int):
        # Beyond ±2^53 a double cannot carry it: exactly, as a decimal string.
        return str(value) if abs(value) > MAX_EXACT_INT else value
    if isinstance(value, list):
        return [to_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, datetime.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, datetime.timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, decimal_pb2.Decimal):
        return value.value  # a decimal result is its exact string
    return str(value)
