"""List prices of Anthropic models, USD per million tokens.

`cached_input` is the cache-read rate (0.1x input) and `cache_write` the
5-minute cache-write rate (1.25x input). Thinking tokens are output tokens
and cost the output rate, which is what Podium charges reasoning at when no
reasoning rate is set. Not modelled: the 1-hour cache-write rate (2x input),
long-context rates above 200K input tokens, batch and regional multipliers.
A policy overrides any of these (`providers.anthropic.models` or `prices`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from podium.plugins.api import ModelPrice

__all__ = ["PRICES", "list_price"]


def list_price(input: str, output: str) -> ModelPrice:
    """A price with Anthropic's cache multipliers applied to `input`."""
    rate = Decimal(input)
    return ModelPrice(
        input=rate,
        output=Decimal(output),
        cached_input=rate * Decimal("0.1"),
        cache_write=rate * Decimal("1.25"),
    )


_OPUS_4_5 = list_price("5", "25")
_OPUS_4_1 = list_price("15", "75")
_SONNET_4 = list_price("3", "15")
_HAIKU_4_5 = list_price("1", "5")

# Aliases and their dated snapshots: a step may name either, and the price
# table is keyed by the name the step gives.
PRICES: Mapping[str, ModelPrice] = {
    "claude-opus-4-6": _OPUS_4_5,
    "claude-opus-4-5": _OPUS_4_5,
    "claude-opus-4-5-20251101": _OPUS_4_5,
    "claude-opus-4-1": _OPUS_4_1,
    "claude-opus-4-1-20250805": _OPUS_4_1,
    "claude-sonnet-4-6": _SONNET_4,
    "claude-sonnet-4-5": _SONNET_4,
    "claude-sonnet-4-5-20250929": _SONNET_4,
    "claude-haiku-4-5": _HAIKU_4_5,
    "claude-haiku-4-5-20251001": _HAIKU_4_5,
}
