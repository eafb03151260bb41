"""Prices: the token convention of cost(), worst cases, overrides and the
table's version."""

from __future__ import annotations

from decimal import Decimal

import pytest

from podium.core.model import Usage
from podium.governance.prices import Price, PriceTable
from podium.plugins.api import ModelPrice

D = Decimal


def test_plain_cost() -> None:
    price = Price(input=D(2), output=D(8))
    usage = Usage(input_tokens=1_000_000, output_tokens=500_000)
    assert price.cost(usage) == D(6)


def test_cached_input_is_a_subset_and_cache_writes_are_extra() -> None:
    price = Price(input=D(3), output=D(15), cached_input=D("0.3"), cache_write=D("3.75"))
    usage = Usage(input_tokens=1_000_000, cached_input_tokens=400_000, cache_write_tokens=200_000)
    # 600k uncached at 3 + 400k cached at 0.3 + 200k written at 3.75
    assert price.cost(usage) == D("1.8") + D("0.12") + D("0.75")


def test_unset_rates_fall_back() -> None:
    price = Price(input=D(1), output=D(4))
    usage = Usage(
        input_tokens=100,
        cached_input_tokens=50,
        cache_write_tokens=10,
        output_tokens=20,
        reasoning_tokens=5,
    )
    assert price.cost(usage) == (D(110) * 1 + D(20) * 4) / 1_000_000


def test_reasoning_tokens_are_part_of_output() -> None:
    price = Price(input=D(0), output=D(10), reasoning=D(20))
    usage = Usage(output_tokens=1_000_000, reasoning_tokens=600_000)
    assert price.cost(usage) == D(4) + D(12)
    # More reasoning than output reported: charged for the reasoning.
    odd = Usage(output_tokens=100_000, reasoning_tokens=200_000)
    assert price.cost(odd) == D(4)


def test_worst_case_is_never_below_the_cost() -> None:
    price = Price(D(3), D(15), cached_input=D("0.3"), cache_write=D("3.75"), reasoning=D(20))
    worst = price.worst_case(input_tokens=1000, max_output_tokens=500)
    assert worst == (D(1000) * D("3.75") + D(500) * 20) / 1_000_000
    usage = Usage(
        input_tokens=600,
        cache_write_tokens=400,
        output_tokens=500,
        reasoning_tokens=500,
    )
    assert price.cost(usage) <= worst


def test_from_model_price() -> None:
    price = Price.from_model_price(ModelPrice(D(1), D(2), cached_input=D("0.5")))
    assert price == Price(D(1), D(2), cached_input=D("0.5"))


def test_rejects_negative_prices() -> None:
    with pytest.raises(ValueError, match="output"):
        Price(D(1), D(-1))


def test_overrides_win_and_the_version_follows_changes() -> None:
    table = PriceTable()
    empty = table.version
    table.contribute("openai", "gpt-4o", Price(D("2.5"), D(10)))
    contributed = table.version
    assert contributed != empty and len(contributed) == 12
    assert table.lookup("openai", "gpt-4o") == (Price(D("2.5"), D(10)), contributed)
    table.override("openai", "gpt-4o", Price(D(2), D(8)))
    assert table.lookup("openai", "gpt-4o") == (Price(D(2), D(8)), table.version)
    assert table.version != contributed
    # A later contribution does not beat the policy.
    table.contribute("openai", "gpt-4o", Price(D(9), D(9)))
    assert table.lookup("openai", "gpt-4o")[0] == Price(D(2), D(8))


def test_version_is_stable_and_ignores_notation() -> None:
    one, two = PriceTable(), PriceTable()
    one.contribute("a", "m", Price(D("1.0"), D(2)))
    one.contribute("b", "m", Price(D(3), D(4)))
    two.contribute("b", "m", Price(D(3), D("4.00")))
    two.contribute("a", "m", Price(D(1), D(2)))
    assert one.version == two.version
    two.contribute("a", "m", Price(D(1), D(2), reasoning=D(2)))
    assert one.version != two.version


def test_unknown_models_cost_nothing_and_say_so() -> None:
    table = PriceTable()
    assert table.lookup("x", "y") == (None, table.version)
    assert table.worst_case("x", "y", 1000, 1000) == 0
    table.contribute("x", "y", Price(D(1), D(2)))
    assert table.worst_case("x", "y", 1_000_000, 1_000_000) == D(3)
    with pytest.raises(ValueError):
        table.contribute("", "y", Price(D(1), D(2)))
