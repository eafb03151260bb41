"""Money in the client (podium.client.money): exact Decimal round trips through
google.type-like Money, and dollars formatted for people."""

from __future__ import annotations

from decimal import Decimal

import pytest

from podium.client import (
    format_usd,
    from_decimal,
    to_decimal,
)
from podium.v1 import common_pb2


@pytest.mark.parametrize(
    ("amount", "units", "nanos"),
    [
        ("0", 0, 0),
        ("0.001234", 0, 1_234_000),
        ("12.5", 12, 500_000_000),
        ("-1.75", -1, -750_000_000),
        ("-0.000000001", 0, -1),
    ],
)
def test_money_round_trips(amount: str, units: int, nanos: int) -> None:
    money = from_decimal(Decimal(amount))
    assert (money.currency_code, money.units, money.nanos) == ("USD", units, nanos)
    assert to_decimal(money) == Decimal(amount)


def test_money_formatting() -> None:
    assert format_usd(common_pb2.Money(currency_code="USD", nanos=1_234_000)) == "$0.001234"
    assert format_usd(Decimal("3")) == "$3.00"
    assert format_usd(Decimal("0.1")) == "$0.10"
    assert format_usd(Decimal("-2.5")) == "-$2.50"
