"""Exact decimal arithmetic in CEL, for money and other amounts that a double
would round (`0.1 + 0.2` is 0.30000000000000004 in doubles).

A decimal is a `google.type.Decimal` (a message holding its decimal string,
normalized: "10.50" is held as "10.5", so that == is numeric equality), so
CEL's type checker tells it apart from ints, doubles and strings. In
workflow data a decimal is a JSON string ("12.50"); `decimal(...)` reads one
(or an int, or a double by its shortest text) and an expression's decimal
result is written back as its string; `fixed(x, 2)` gives one with exactly
two places ("0.30"):

    decimal('0.1') + decimal('0.2') == decimal('0.3')              // true
    round(decimal(input.net) * decimal('1.19'), 2, 'HALF_EVEN')    // also HALF_UP, DOWN, ...
    fixed(decimalSum(input.lines.map(l, decimal(l.amount))), 2)    // "1476.08"

Arithmetic is exact for + - * (the precision grows as needed); `/` rounds
half-even to 34 significant digits (IEEE decimal128), as Python's decimal
module does with that precision.
"""

from __future__ import annotations

import decimal as pydecimal
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from cel_expr_python import cel
from google.type import decimal_pb2

__all__ = ["ROUNDING_MODES", "extension", "to_decimal_message", "to_text"]

DECIMAL_TYPE_NAME = "google.type.Decimal"
# Exact for + - * on any amounts a workflow holds; a quotient is rounded here.
_DIVISION = pydecimal.Context(prec=34, rounding=pydecimal.ROUND_HALF_EVEN)
_EXACT = pydecimal.Context(
    prec=pydecimal.MAX_PREC, Emax=pydecimal.MAX_EMAX, Emin=pydecimal.MIN_EMIN
)
# A scale a person means; beyond it, quantize() would build huge numbers.
_MAX_PLACES = 100

ROUNDING_MODES = {
    "HALF_EVEN": pydecimal.ROUND_HALF_EVEN,
    "HALF_UP": pydecimal.ROUND_HALF_UP,
    "HALF_DOWN": pydecimal.ROUND_HALF_DOWN,
    "UP": pydecimal.ROUND_UP,
    "DOWN": pydecimal.ROUND_DOWN,
    "CEILING": pydecimal.ROUND_CEILING,
    "FLOOR": pydecimal.ROUND_FLOOR,
}


def to_text(value: Decimal) -> str:
    """The plain decimal string of `value` ("1E+3" reads "1000", -0 reads "0")."""
    if value == 0:
        value = abs(value)
    return format(value, "f")


def to_decimal_message(value: Decimal) -> decimal_pb2.Decimal:
    # Normalized ("10.50" is held as "10.5"): CEL compares messages field by
    # field, so == and != are the numbers' equality only in one canonical form.
    return decimal_pb2.Decimal(value=to_text(value.normalize(_EXACT)))


def _read(message: decimal_pb2.Decimal) -> Decimal:
    return Decimal(message.value)


def _parse(text: str) -> decimal_pb2.Decimal:
    try:
        value = Decimal(text.strip())
    except pydecimal.InvalidOperation:
        raise ValueError(f"decimal({text[:40]!r}): not a decimal number") from None
    if not value.is_finite():
        raise ValueError(f"decimal({text[:40]!r}): not a finite number")
    return to_decimal_message(value)


def _from_double(number: float) -> decimal_pb2.Decimal:
    # The shortest text that reads back as this double (0.1 -> "0.1"): what the
    # author wrote, not the double's binary expansion.
    return _parse(repr(number))


def _binary(
    operate: Callable[[Decimal, Decimal], Decimal],
) -> Callable[[decimal_pb2.Decimal, decimal_pb2.Decimal], decimal_pb2.Decimal]:
    def apply(left: decimal_pb2.Decimal, right: decimal_pb2.Decimal) -> decimal_pb2.Decimal:
        return to_decimal_message(operate(_read(left), _read(right)))

    return apply


def _divide(left: Decimal, right: Decimal) -> Decimal:
    if right == 0:
        raise ValueError("decimal division by zero")
    return _DIVISION.divide(left, right).normalize(_DIVISION) if left else Decimal(0)


def _round(value: decimal_pb2.Decimal, places: int, mode: str) -> decimal_pb2.Decimal:
    rounding = ROUNDING_MODES.get(mode)
    if rounding is None:
        raise ValueError(f"round(): mode {mode!r} is not one of {', '.join(ROUNDING_MODES)}")
    if not -_MAX_PLACES <= places <= _MAX_PLACES:
        raise ValueError(f"round(): places must be from -{_MAX_PLACES} to {_MAX_PLACES}")
    exponent = Decimal(1).scaleb(-places)
    return to_decimal_message(_read(value).quantize(exponent, rounding=rounding, context=_EXACT))


def _fixed(value: decimal_pb2.Decimal, places: int) -> str:
    """The amount as text with exactly `places` decimals (rounded half-even):
    what an invoice shows ("0.30", "1.00")."""
    if not 0 <= places <= _MAX_PLACES:
        raise ValueError(f"fixed(): places must be from 0 to {_MAX_PLACES}")
    exponent = Decimal(1).scaleb(-places)
    rounded = _read(value).quantize(exponent, rounding=pydecimal.ROUND_HALF_EVEN, context=_EXACT)
    return to_text(rounded) if rounded else format(abs(rounded), "f")


def _sum(values: Sequence[Any]) -> decimal_pb2.Decimal:
    total = Decimal(0)
    for value in values:
        if not isinstance(value, decimal_pb2.Decimal):
            raise ValueError("decimalSum() takes a list of decimals (map them with decimal(...))")
        total = _EXACT.add(total, _read(value))
    return to_decimal_message(total)


def _compare(test: Callable[[Decimal, Decimal], bool]) -> Callable[..., bool]:
    return lambda left, right: test(_read(left), _read(right))


def extension() -> cel.CelExtension:
    """The decimal type's functions and operators, for a CEL environment
    created with the default descriptor pool (where google.type.Decimal is)."""
    dec, text, integer, double, boolean = (
        cel.Type(DECIMAL_TYPE_NAME),
        cel.Type.STRING,
        cel.Type.INT,
        cel.Type.DOUBLE,
        cel.Type.BOOL,
    )
    decimals = cel.Type.List(dec)

    def fn(name: str, *overloads: tuple[str, cel.Type, list[cel.Type], Callable[..., Any]]) -> Any:
        return cel.FunctionDecl(
            name,
            [
                cel.Overload(oid, result, params, impl=impl)
                for oid, result, params, impl in overloads
            ],
        )

    exact = _EXACT
    return cel.CelExtension(
        "podium.decimal",
        [
            fn(
                "decimal",
                ("decimal_string", dec, [text], _parse),
                ("decimal_int", dec, [integer], lambda n: to_decimal_message(Decimal(n))),
                ("decimal_double", dec, [double], _from_double),
                ("decimal_decimal", dec, [dec], lambda d: d),
            ),
            fn("_+_", ("add_decimal", dec, [dec, dec], _binary(exact.add))),
            fn("_-_", ("subtract_decimal", dec, [dec, dec], _binary(exact.subtract))),
            fn("_*_", ("multiply_decimal", dec, [dec, dec], _binary(exact.multiply))),
            fn("_/_", ("divide_decimal", dec, [dec, dec], _binary(_divide))),
            fn("-_", ("negate_decimal", dec, [dec], lambda d: to_decimal_message(-_read(d)))),
            fn("_<_", ("less_decimal", boolean, [dec, dec], _compare(lambda a, b: a < b))),
            fn("_<=_", ("less_equals_decimal", boolean, [dec, dec], _compare(lambda a, b: a <= b))),
            fn("_>_", ("greater_decimal", boolean, [dec, dec], _compare(lambda a, b: a > b))),
            fn(
                "_>=_",
                ("greater_equals_decimal", boolean, [dec, dec], _compare(lambda a, b: a >= b)),
            ),
            fn(
                "round",
                ("round_decimal_places_mode", dec, [dec, integer, text], _round),
                (
                    "round_decimal_places",
                    dec,
                    [dec, integer],
                    lambda d, p: _round(d, p, "HALF_EVEN"),
                ),
            ),
            fn("decimalSum", ("decimal_sum_list", dec, [decimals], _sum)),
            fn("string", ("string_decimal", text, [dec], lambda d: to_text(_read(d)))),
            fn("fixed", ("fixed_decimal_places", text, [dec, integer], _fixed)),
            fn("double", ("double_decimal", double, [dec], lambda d: float(_read(d)))),
        ],
    )
