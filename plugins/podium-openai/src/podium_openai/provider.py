"""The `openai` provider: OpenAI models through the official SDK, on the
Chat Completions or the Responses API (chosen per model in the settings)."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from podium.plugins.api import Completion, CompletionRequest, ModelPrice, ProviderError
from podium_openai.prices import PRICES
from podium_openai.settings import Settings, parse_settings

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["OpenAIProvider", "require_sdk"]

_CALLS = "podium_openai.calls"


def require_sdk() -> None:
    """ImportError unless the openai SDK is installed: checked when the plugin
    loads (so that a missing SDK is reported at start-up, as a failed plugin),
    without importing it."""
    if importlib.util.find_spec("openai") is None:
        raise ImportError("the openai SDK is not installed (pip install openai)")


class OpenAIProvider:
    name = "openai"
    description = "OpenAI models (Chat Completions or Responses API) through the openai SDK."
    version = "1"

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self._settings = Settings()
        self.models: Sequence[str] = tuple(PRICES)
        # Made on the first call, so that a server with no API key starts;
        # one per event loop, since its connections belong to the loop.
        self._client: tuple[asyncio.AbstractEventLoop, AsyncOpenAI] | None = None
        if settings is not None:
            self.configure(settings)

    def configure(self, settings: Mapping[str, Any]) -> None:
        """Takes the policy file's `providers.openai` (see settings.py);
        raises ValueError, and changes nothing, if any setting is bad."""
        parsed = parse_settings(settings)
        self._settings = parsed
        self.models = (*PRICES, *(model for model in parsed.models if model not in PRICES))
        self._client = None

    def price(self, model: str) -> ModelPrice | None:
        configured = self._settings.models.get(model)
        if configured is not None and configured.price is not None:
            return configured.price
        return PRICES.get(model)

    async def complete(self, request: CompletionRequest) -> Completion:
        if request.max_tokens is not None and request.max_tokens <= 0:
            raise ProviderError("max_tokens must be > 0", kind="bad_request", status=400)
        calls = await _calls()
        client = self._client_for_this_loop(calls)
        completion: Completion = await calls.complete(client, request, self._settings)
        return completion

    async def aclose(self) -> None:
        """Closes the HTTP connections of this event loop's client; the next
        call opens new ones."""
        held, self._client = self._client, None
        if held is not None and held[0] is asyncio.get_running_loop():
            await held[1].close()

    def _client_for_this_loop(self, calls: ModuleType) -> AsyncOpenAI:
        loop = asyncio.get_running_loop()
        if self._client is not None and self._client[0] is loop:
            return self._client[1]
        client: AsyncOpenAI = calls.new_client(self._settings)
        self._client = (loop, client)
        return client


async def _calls() -> ModuleType:
    """podium_openai.calls, the SDK-bound half: imported on the first call, not
    when the plugin loads (the SDK costs tens of MB and a good part of a second
    at start-up, for a server that may never call OpenAI), and in a thread, so
    that the event loop keeps serving meanwhile."""
    loaded = sys.modules.get(_CALLS)
    if loaded is not None:
        return loaded
    return await asyncio.to_thread(importlib.import_module, _CALLS)
