"""The SDK-bound half of the provider: the client and one call on the Chat
Completions or the Responses API.

Only this module (and those it imports) imports the openai SDK; the provider
imports it on its first call, so that loading the plugin does not.
"""

from __future__ import annotations

import openai
from openai import AsyncOpenAI

from podium.plugins.api import Completion, CompletionRequest, ProviderError
from podium_openai.chat import complete_chat
from podium_openai.responses import complete_responses
from podium_openai.settings import Settings

__all__ = ["complete", "new_client"]


def new_client(settings: Settings) -> AsyncOpenAI:
    try:
        # Unset values (None) are read by the SDK from OPENAI_API_KEY,
        # OPENAI_BASE_URL, OPENAI_ORG_ID and OPENAI_PROJECT_ID.
        return AsyncOpenAI(
            api_key=settings.api_key,
            base_url=settings.base_url,
            organization=settings.organization,
            project=settings.project,
            timeout=settings.timeout if settings.timeout is not None else openai.NOT_GIVEN,
            max_retries=0,  # retries, waits and breakers are governance's
        )
    except openai.OpenAIError as error:
        raise ProviderError(f"OpenAI: {error}", kind="authentication") from error


async def complete(
    client: AsyncOpenAI, request: CompletionRequest, settings: Settings
) -> Completion:
    if settings.model(request.model).api == "responses":
        return await complete_responses(client, request)
    return await complete_chat(client, request, settings)
