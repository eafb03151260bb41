"""Conversion between `podium.v1.Money` (units + nanos) and `decimal.Decimal`.

Money travels as integers so that no language needs a decimal type to read it; Python callers
want exact arithmetic, so the client hands out `Decimal`, never `float`.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from podium.v1 import common_pb2

__all__ = ["format_usd", "from_decimal", "to_decimal"]

_NANO = Decimal("1e-9")
_NANOS_PER_UNIT = 1_000_000_000


def to_decimal(money: common_pb2.Money) -> Decimal:
    """The amount of `money` as an exact Decimal (the currency code is dropped)."""
    return Decimal(money.units) + Decimal(money.nanos) * _NANO


def from_decimal(amount: Decimal | int | str, currency_code: str = "USD") -> common_pb2.Money:
    """`amount` as Money, rounded half-even to the nano; units and nanos share its sign."""
    value = Decimal(amount).quantize(_NANO, rounding=ROUND_HALF_EVEN)
    total_nanos = int(value.scaleb(9))
    # Truncating division keeps units and nanos of the same sign, as google.type.Money requires
    # (Python's // and % would floor negative amounts into mixed signs).
    sign = -1 if total_nanos < 0 else 1
    units, nanos = divmod(abs(total_nanos), _NANOS_PER_UNIT)
    return common_pb2.Money(currency_code=currency_code, units=sign * units, nanos=sign * nanos)


def format_usd(amount: Decimal | common_pb2.Money) -> str:
    """A cost for people: "$0.001234" — at least two decimals, at most six, no float noise."""
    value = to_decimal(amount) if isinstance(amount, common_pb2.Money) else amount
    rounded = value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN)
    text = f"{abs(rounded):f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    fraction = fraction.ljust(2, "0")
    sign = "-" if rounded < 0 else ""
    return f"{sign}${whole}.{fraction}"
