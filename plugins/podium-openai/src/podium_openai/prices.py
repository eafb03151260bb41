"""List prices of current OpenAI models, USD per million tokens.

Cached input is the rate for prompt tokens read from OpenAI's prompt cache;
reasoning tokens are billed as output tokens. Policy files override any of
these (`providers.openai.models.<model>.price`, or governance `prices`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from podium.plugins.api import ModelPrice

__all__ = ["PRICES"]


def _price(input: str, cached_input: str, output: str) -> ModelPrice:
    return ModelPrice(
        input=Decimal(input), output=Decimal(output), cached_input=Decimal(cached_input)
    )


PRICES: Mapping[str, ModelPrice] = {
    "gpt-4o": _price("2.50", "1.25", "10.00"),
    "gpt-4o-mini": _price("0.15", "0.075", "0.60"),
    "gpt-4.1": _price("2.00", "0.50", "8.00"),
    "gpt-4.1-mini": _price("0.40", "0.10", "1.60"),
    "gpt-4.1-nano": _price("0.10", "0.025", "0.40"),
    "gpt-5": _price("1.25", "0.125", "10.00"),
    "gpt-5-mini": _price("0.25", "0.025", "2.00"),
    "gpt-5-nano": _price("0.05", "0.005", "0.40"),
    "o3": _price("2.00", "0.50", "8.00"),
    "o3-mini": _price("1.10", "0.55", "4.40"),
    "o4-mini": _price("1.10", "0.275", "4.40"),
}
