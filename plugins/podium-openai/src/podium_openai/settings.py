"""The provider's settings, from the policy file's `providers.openai`:

    providers:
      openai:
        api_key: sk-...            # default: OPENAI_API_KEY
        base_url: https://...      # default: OPENAI_BASE_URL, else OpenAI's
        organization: org-...      # default: OPENAI_ORG_ID
        project: proj_...          # default: OPENAI_PROJECT_ID
        timeout: 60                # seconds per request (default: the SDK's)
        models:
          gpt-4.1:
            api: responses         # "chat" (default) or "responses"
            max_tokens_param: max_completion_tokens
            price: {input: 2, output: 8, cached_input: 0.5}

Unset values are left to the SDK, which reads its environment variables
itself. A model listed here is offered (and priced) even if the plugin does
not know it, e.g. a model behind an OpenAI-compatible base_url.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from podium.plugins.api import ModelPrice

__all__ = ["Api", "ModelSettings", "Settings", "parse_settings"]

Api = Literal["chat", "responses"]
MaxTokensParam = Literal["max_tokens", "max_completion_tokens"]

_KEYS = ("api_key", "base_url", "organization", "project", "timeout", "models")
_MODEL_KEYS = ("api", "max_tokens_param", "price")
_PRICE_KEYS = ("input", "output", "cached_input", "cache_write")
# Reasoning models refuse `max_tokens` in Chat Completions.
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


@dataclass(frozen=True, slots=True)
class ModelSettings:
    api: Api = "chat"
    max_tokens_param: MaxTokensParam | None = None
    price: ModelPrice | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    api_key: str | None = None
    base_url: str | None = None
    organization: str | None = None
    project: str | None = None
    timeout: float | None = None
    models: Mapping[str, ModelSettings] = field(default_factory=dict)

    def model(self, name: str) -> ModelSettings:
        return self.models.get(name) or ModelSettings()

    def max_tokens_param(self, model: str) -> MaxTokensParam:
        chosen = self.model(model).max_tokens_param
        if chosen is not None:
            return chosen
        if model.startswith(_REASONING_PREFIXES):
            return "max_completion_tokens"
        return "max_tokens"


def parse_settings(settings: Mapping[str, Any]) -> Settings:
    """Checks everything before anything is used: raises ValueError naming
    the first bad setting."""
    if not isinstance(settings, Mapping):
        raise ValueError("provider settings must be a mapping")
    _no_unknown(settings, _KEYS, "")
    timeout = settings.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ValueError("timeout must be a number of seconds > 0")
    models = settings.get("models") or {}
    if not isinstance(models, Mapping):
        raise ValueError("models must be a mapping of model name to settings")
    return Settings(
        api_key=_string(settings, "api_key"),
        base_url=_string(settings, "base_url"),
        organization=_string(settings, "organization"),
        project=_string(settings, "project"),
        timeout=float(timeout) if timeout is not None else None,
        models={str(name): _model(str(name), value) for name, value in models.items()},
    )


def _model(name: str, value: Any) -> ModelSettings:
    where = f"models.{name}"
    if value is None:
        return ModelSettings()
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a mapping")
    _no_unknown(value, _MODEL_KEYS, where + ".")
    api = value.get("api", "chat")
    if api not in ("chat", "responses"):
        raise ValueError(f"{where}.api must be 'chat' or 'responses', not {api!r}")
    max_tokens_param = value.get("max_tokens_param")
    if max_tokens_param not in (None, "max_tokens", "max_completion_tokens"):
        raise ValueError(f"{where}.max_tokens_param must be max_tokens or max_completion_tokens")
    price = value.get("price")
    return ModelSettings(
        api=api,
        max_tokens_param=max_tokens_param,
        price=None if price is None else _price(price, f"{where}.price"),
    )


def _price(value: Any, where: str) -> ModelPrice:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a mapping with input and output")
    _no_unknown(value, _PRICE_KEYS, where + ".")
    input_rate = _rate(value.get("input"), f"{where}.input")
    output_rate = _rate(value.get("output"), f"{where}.output")
    if input_rate is None or output_rate is None:
        raise ValueError(f"{where} needs both input and output")
    return ModelPrice(
        input_rate,
        output_rate,
        _rate(value.get("cached_input"), f"{where}.cached_input"),
        _rate(value.get("cache_write"), f"{where}.cache_write"),
    )


def _rate(value: Any, where: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"{where} must be a number of USD per million tokens")
    try:
        # str() first: 0.1 (a float) is the price 0.1, not 0.1000000000000000055...
        rate = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{where} must be a number, not {value!r}") from None
    if not rate.is_finite() or rate < 0:
        raise ValueError(f"{where} must be a finite number >= 0")
    return rate


def _string(settings: Mapping[str, Any], key: str) -> str | None:
    value = settings.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} must be a non-empty string")
    return value


def _no_unknown(value: Mapping[str, Any], known: tuple[str, ...], prefix: str) -> None:
    unknown = sorted(str(key) for key in value if key not in known)
    if unknown:
        raise ValueError(
            f"unknown setting {prefix}{unknown[0]}; known: {', '.join(prefix + k for k in known)}"
        )
