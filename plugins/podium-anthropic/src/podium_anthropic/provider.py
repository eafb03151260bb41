"""The `anthropic` provider: Claude models through the Messages API, on the
official SDK.

Settings (the policy file's `providers.anthropic`, all optional):

    api_key       the API key; without it (and without `api_key_env`), the
                  SDK's own lookup: ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN,
                  a profile
    api_key_env   the name of an environment variable holding the key, to keep
                  it out of the policy file
    base_url      another endpoint (a proxy, a gateway); else ANTHROPIC_BASE_URL
                  or the public API
    timeout       seconds to wait for the API (default: the SDK's, 10 minutes)
    max_tokens    the output ceiling of requests that give none (default 4096;
                  the API requires one)
    models        {model: {input, output, cached_input, cache_write}}: USD per
                  million tokens, replacing the list price of a known model or
                  adding a model

The SDK never retries (max_retries=0): retries are Podium's, per step policy,
after governance has seen each failure.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import math
import os
import sys
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from types import ModuleType
from typing import TYPE_CHECKING, Any

from podium.plugins.api import Completion, CompletionRequest, ModelPrice
from podium_anthropic.prices import PRICES

if TYPE_CHECKING:
    import anthropic

__all__ = ["DEFAULT_MAX_TOKENS", "AnthropicProvider"]

DEFAULT_MAX_TOKENS = 4096
_SETTINGS = frozenset({"api_key", "api_key_env", "base_url", "timeout", "max_tokens", "models"})
_PRICE_FIELDS = ("input", "output", "cached_input", "cache_write")
_MESSAGES = "podium_anthropic.messages"


def require_sdk() -> None:
    """ImportError unless the anthropic SDK is installed: checked when the
    plugin loads (so that a missing SDK is reported at start-up, as a failed
    plugin), without importing it."""
    if importlib.util.find_spec("anthropic") is None:
        raise ImportError("the anthropic SDK is not installed (pip install anthropic)")


class AnthropicProvider:
    name = "anthropic"
    description = "Anthropic's Claude models through the Messages API (official SDK)."
    version = "1"

    def __init__(self) -> None:
        self._prices: dict[str, ModelPrice] = dict(PRICES)
        self.models: Sequence[str] = tuple(self._prices)
        self._api_key: str | None = None
        self._base_url: str | None = None
        self._timeout: float | None = None
        self._max_tokens = DEFAULT_MAX_TOKENS
        # Made on the first call, so that a server starts without a key.
        self._sdk: anthropic.AsyncAnthropic | None = None

    def configure(self, settings: Mapping[str, Any]) -> None:
        """Applies the policy's settings, all or none: a bad setting raises
        ValueError and leaves the provider as it was."""
        unknown = sorted(set(settings) - _SETTINGS)
        if unknown:
            known = ", ".join(sorted(_SETTINGS))
            raise ValueError(f"unknown settings {', '.join(unknown)}; known: {known}")
        api_key = _text(settings, "api_key")
        variable = _text(settings, "api_key_env")
        if api_key is None and variable is not None:
            api_key = os.environ.get(variable) or None
            if api_key is None:
                raise ValueError(f"api_key_env: environment variable {variable} is not set")
        base_url = _text(settings, "base_url")
        timeout = _positive(settings, "timeout")
        max_tokens = _positive(settings, "max_tokens")
        if max_tokens is not None and max_tokens != int(max_tokens):
            raise ValueError("max_tokens must be a whole number")
        prices = dict(PRICES)
        models = settings.get("models") or {}
        if not isinstance(models, Mapping):
            raise ValueError("models must map model names to prices")
        for model, price in models.items():
            prices[str(model)] = _price(str(model), price)

        self._api_key = api_key
        self._base_url = base_url
        self._timeout = timeout
        self._max_tokens = int(max_tokens) if max_tokens is not None else DEFAULT_MAX_TOKENS
        self._prices = prices
        self.models = tuple(prices)
        self._sdk = None

    def price(self, model: str) -> ModelPrice | None:
        return self._prices.get(model)

    async def complete(self, request: CompletionRequest) -> Completion:
        messages = await _messages()
        if self._sdk is None:
            options: dict[str, Any] = {"max_retries": 0}
            if self._api_key is not None:
                options["api_key"] = self._api_key
            if self._base_url is not None:
                options["base_url"] = self._base_url
            if self._timeout is not None:
                options["timeout"] = self._timeout
            self._sdk = messages.new_client(options)
        completion: Completion = await messages.complete(self._sdk, request, self._max_tokens)
        return completion

    async def aclose(self) -> None:
        """Closes the SDK client's connections."""
        if self._sdk is not None:
            await self._sdk.close()
            self._sdk = None


async def _messages() -> ModuleType:
    """podium_anthropic.messages, the SDK-bound half: imported on the first
    call, not when the plugin loads (the SDK costs tens of MB and about a
    second at start-up, for a server that may never call Claude), and in a
    thread, so that the event loop keeps serving meanwhile."""
    loaded = sys.modules.get(_MESSAGES)
    if loaded is not None:
        return loaded
    return await asyncio.to_thread(importlib.import_module, _MESSAGES)


def _text(settings: Mapping[str, Any], key: str) -> str | None:
    value = settings.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} must be a non-empty string")
    return value.strip()


def _positive(settings: Mapping[str, Any], key: str) -> float | None:
    value = settings.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number > 0")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{key} must be a number > 0")
    return float(value)


def _price(model: str, value: Any) -> ModelPrice:
    if not isinstance(value, Mapping):
        raise ValueError(f"models.{model} must map {', '.join(_PRICE_FIELDS)} to USD per million")
    unknown = sorted(set(value) - set(_PRICE_FIELDS))
    if unknown:
        raise ValueError(f"models.{model}: unknown fields {', '.join(map(str, unknown))}")
    rates: dict[str, Decimal | None] = {}
    for field in _PRICE_FIELDS:
        raw = value.get(field)
        if raw is None:
            if field in ("input", "output"):
                raise ValueError(f"models.{model}.{field} is required")
            rates[field] = None
            continue
        if isinstance(raw, bool):
            raise ValueError(f"models.{model}.{field} must be a price >= 0")
        try:
            rate = Decimal(str(raw))
        except InvalidOperation:
            raise ValueError(f"models.{model}.{field} must be a price >= 0") from None
        if not rate.is_finite() or rate < 0:
            raise ValueError(f"models.{model}.{field} must be a price >= 0")
        rates[field] = rate
    input_rate, output_rate = rates["input"], rates["output"]
    assert input_rate is not None and output_rate is not None
    return ModelPrice(input_rate, output_rate, rates["cached_input"], rates["cache_write"])
