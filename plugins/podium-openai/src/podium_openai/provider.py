"""The `openai` provider: OpenAI models through the official SDK, on the
Chat Completions or the Responses API (chosen per model in the settings)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import openai
from openai import AsyncOpenAI

from podium.plugins.api import Completion, CompletionRequest, ModelPrice, ProviderError
from podium_openai.chat import complete_chat
from podium_openai.prices import PRICES
from podium_openai.responses import complete_responses
from podium_openai.settings import Settings, parse_settings

__all__ = ["OpenAIProvider"]


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
        client = self._client_for_this_loop()
        if self._settings.model(request.model).api == "responses":
            return await complete_responses(client, request)
        return await complete_chat(client, request, self._settings)

    async def aclose(self) -> None:
        """Closes the HTTP connections of this event loop's client; the next
        call opens new ones."""
        held, self._client = self._client, None
        if held is not None and held[0] is asyncio.get_running_loop():
            await held[1].close()

    def _client_for_this_loop(self) -> AsyncOpenAI:
        loop = asyncio.get_running_loop()
        if self._client is not None and self._client[0] is loop:
            return self._client[1]
        settings = self._settings
        try:
            # Unset values (None) are read by the SDK from OPENAI_API_KEY,
            # OPENAI_BASE_URL, OPENAI_ORG_ID and OPENAI_PROJECT_ID.
            client = AsyncOpenAI(
                api_key=settings.api_key,
                base_url=settings.base_url,
                organization=settings.organization,
                project=settings.project,
                timeout=settings.timeout if settings.timeout is not None else openai.NOT_GIVEN,
                max_retries=0,  # retries, waits and breakers are governance's
            )
        except openai.OpenAIError as error:
            raise ProviderError(f"OpenAI: {error}", kind="authentication") from error
        self._client = (loop, client)
        return client
