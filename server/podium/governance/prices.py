"""Model prices: what providers contribute, what the policy overrides, and a
version that names the effective table (so a recorded cost says which prices
it was computed with).

Token convention (that of `Usage`):
- `input_tokens` counts every input token, cached ones included;
  `cached_input_tokens` is the subset read from the provider's cache.
- `cache_write_tokens` are in addition to `input_tokens`.
- `reasoning_tokens` are part of `output_tokens`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from podium.core.model import Usage
from podium.plugins.api import ModelPrice, Provider

log = logging.getLogger("podium.governance")

__all__ = ["Price", "PriceTable", "contribute_provider_prices"]

_MILLION = Decimal(1_000_000)
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens. An unset rate falls back on `input` (cached
    input, cache writes) or `output` (reasoning)."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None

    def __post_init__(self) -> None:
        for name in ("input", "output", "cached_input", "cache_write", "reasoning"):
            value = getattr(self, name)
            if value is not None and (not value.is_finite() or value < 0):
                raise ValueError(f"{name} must be a finite price >= 0, got {value}")

    @classmethod
    def from_model_price(cls, price: ModelPrice) -> Price:
        return cls(price.input, price.output, price.cached_input, price.cache_write)

    def cost(self, usage: Usage) -> Decimal:
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        reasoning = usage.reasoning_tokens
        # A provider reporting more reasoning than output tokens is charged
        # for the reasoning it reported: overcharging is the safe mistake.
        visible_output = max(usage.output_tokens - reasoning, 0)
        total = (
            (usage.input_tokens - cached) * self.input
            + cached * _or(self.cached_input, self.input)
            + usage.cache_write_tokens * _or(self.cache_write, self.input)
            + visible_output * self.output
            + reasoning * _or(self.reasoning, self.output)
        )
        return total / _MILLION

    def worst_case(self, input_tokens: int, max_output_tokens: int) -> Decimal:
        """The most a call can cost: every input token at the dearer of the
        plain and cache-write rates (a prompt may be written to the cache),
        every output token at the dearer of the output and reasoning rates."""
        per_input = max(self.input, _or(self.cache_write, self.input))
        per_output = max(self.output, _or(self.reasoning, self.output))
        return (input_tokens * per_input + max_output_tokens * per_output) / _MILLION

    def _canonical(self) -> str:
        rates = (self.input, self.output, self.cached_input, self.cache_write, self.reasoning)
        return ",".join("-" if rate is None else _plain(rate) for rate in rates)


class PriceTable:
    """Prices per (provider, model). Policy overrides win over what provider
    plugins contribute."""

    def __init__(self) -> None:
        self._contributed: dict[tuple[str, str], Price] = {}
        self._overrides: dict[tuple[str, str], Price] = {}
        self._version = ""
        self._refresh()

    @property
    def version(self) -> str:
        """A short hash of the effective table; any changed entry changes it."""
        return self._version

    def contribute(self, provider: str, model: str, price: Price) -> None:
        self._contributed[_key(provider, model)] = price
        self._refresh()

    def override(self, provider: str, model: str, price: Price) -> None:
        self._overrides[_key(provider, model)] = price
        self._refresh()

    def lookup(self, provider: str, model: str) -> tuple[Price | None, str]:
        key = (provider, model)
        price = self._overrides.get(key)
        if price is None:
            price = self._contributed.get(key)
        return price, self._version

    def worst_case(
        self, provider: str, model: str, input_tokens: int, max_output_tokens: int
    ) -> Decimal:
        """The most a call can cost; zero for a model with no known price (the
        gateway flags such calls, as the provider contract says)."""
        price, _ = self.lookup(provider, model)
        return ZERO if price is None else price.worst_case(input_tokens, max_output_tokens)

    def entries(self) -> dict[tuple[str, str], Price]:
        """The effective table."""
        return {**self._contributed, **self._overrides}

    def _refresh(self) -> None:
        # repr() quotes the names, so no provider or model name can fake a separator.
        lines = sorted(
            f"{p!r} {m!r} {price._canonical()}" for (p, m), price in self.entries().items()
        )
        digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
        self._version = digest[:12]


def _key(provider: str, model: str) -> tuple[str, str]:
    if not provider or not model:
        raise ValueError("a price needs a provider and a model")
    return (provider, model)


def _or(rate: Decimal | None, fallback: Decimal) -> Decimal:
    return fallback if rate is None else rate


def _plain(rate: Decimal) -> str:
    # 1.0 and 1.00 are one price: normalize so the version ignores notation.
    return format(rate.normalize(), "f")


def contribute_provider_prices(prices: PriceTable, providers: Iterable[Provider]) -> None:
    """Provider plugins contribute their models' prices (a policy's override
    wins); a provider whose `price` raises is logged, never fatal."""
    for provider in providers:
        for model in provider.models:
            try:
                price = provider.price(model)
            except Exception:  # a plugin's bug must not stop the server
                log.exception("provider %s: price(%r) raised", provider.name, model)
                continue
            if price is not None:
                prices.contribute(provider.name, model, Price.from_model_price(price))
