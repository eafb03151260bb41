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

import math
import os
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import anthropic

from podium.plugins.api import (
    Completion,
    CompletionRequest,
    ModelPrice,
    ProviderError,
    emit_delta,
)
from podium_anthropic.errors import provider_error, rate_limits, stream_broken
from podium_anthropic.prices import PRICES
from podium_anthropic.stream import StreamedMessage
from podium_anthropic.translate import build_body, completion_from_message

__all__ = ["DEFAULT_MAX_TOKENS", "AnthropicProvider"]

DEFAULT_MAX_TOKENS = 4096
_SETTINGS = frozenset({"api_key", "api_key_env", "base_url", "timeout", "max_tokens", "models"})
_PRICE_FIELDS = ("input", "output", "cached_input", "cache_write")


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
        body = build_body(request, self._max_tokens)
        client = self._client()
        if request.stream:
            return await self._stream(client, body, request)
        try:
            response = await client.messages.with_raw_response.create(**body)
            message = await response.parse()
        except anthropic.AnthropicError as error:
            raise provider_error(error) from error
        except ValueError as error:
            # The SDK refuses a non-streamed request it expects to outlast its
            # timeout (a large max_tokens): the caller should stream.
            raise ProviderError(str(error), kind="bad_request") from error
        return completion_from_message(message, rate_limits(response.headers))

    async def aclose(self) -> None:
        """Closes the SDK client's connections."""
        if self._sdk is not None:
            await self._sdk.close()
            self._sdk = None

    async def _stream(
        self, client: anthropic.AsyncAnthropic, body: Mapping[str, Any], request: CompletionRequest
    ) -> Completion:
        try:
            stream = await client.messages.create(**body, stream=True)
        except anthropic.AnthropicError as error:
            raise provider_error(error) from error
        message = StreamedMessage()
        async with stream:
            events = aiter(stream)
            while True:
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    break
                except Exception as error:
                    # Whatever broke the stream (a dropped connection, a read
                    # timeout, an error event, garbage): once the usage is in,
                    # the message is whole but for message_stop.
                    if message.has_usage:
                        break
                    raise stream_broken(error) from error
                message.add(event)
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    emit_delta(request, event.delta.text)
        return message.completion(rate_limits(stream.response.headers))

    def _client(self) -> anthropic.AsyncAnthropic:
        if self._sdk is None:
            options: dict[str, Any] = {"max_retries": 0}
            if self._api_key is not None:
                options["api_key"] = self._api_key
            if self._base_url is not None:
                options["base_url"] = self._base_url
            if self._timeout is not None:
                options["timeout"] = self._timeout
            try:
                self._sdk = anthropic.AsyncAnthropic(**options)
            except anthropic.AnthropicError as error:
                raise provider_error(error) from error
        sdk = self._sdk
        if sdk.api_key is None and sdk.auth_token is None and sdk.credentials is None:
            raise ProviderError(
                "no Anthropic API key: set providers.anthropic.api_key (or api_key_env) "
                "in the policy, or ANTHROPIC_API_KEY",
                kind="authentication",
            )
        return sdk


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
