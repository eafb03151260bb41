"""Podium provider plugin for Anthropic's Claude models (Messages API)."""

from __future__ import annotations

from podium_anthropic.prices import PRICES
from podium_anthropic.provider import DEFAULT_MAX_TOKENS, AnthropicProvider

__all__ = ["DEFAULT_MAX_TOKENS", "PRICES", "AnthropicProvider"]
