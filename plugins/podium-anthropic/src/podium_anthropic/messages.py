"""The SDK-bound half of the provider: one Messages API call, streamed or not.

Only this module (and those it imports) imports the anthropic SDK; the
provider imports it on its first call, so that loading the plugin does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anthropic

from podium.plugins.api import Completion, CompletionRequest, ProviderError, emit_delta
from podium_anthropic.errors import provider_error, rate_limits, stream_broken
from podium_anthropic.stream import StreamedMessage
from podium_anthropic.translate import build_body, completion_from_message

__all__ = ["complete", "new_client"]


def new_client(options: Mapping[str, Any]) -> anthropic.AsyncAnthropic:
    try:
        return anthropic.AsyncAnthropic(**options)
    except anthropic.AnthropicError as error:
        raise provider_error(error) from error


async def complete(
    client: anthropic.AsyncAnthropic, request: CompletionRequest, max_tokens: int
) -> Completion:
    body = build_body(request, max_tokens)
    if client.api_key is None and client.auth_token is None and client.credentials is None:
        raise ProviderError(
            "no Anthropic API key: set providers.anthropic.api_key (or api_key_env) "
            "in the policy, or ANTHROPIC_API_KEY",
            kind="authentication",
        )
    if request.stream:
        return await _stream(client, body, request)
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


async def _stream(
    client: anthropic.AsyncAnthropic, body: Mapping[str, Any], request: CompletionRequest
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
                # Live subscribers see the answer grow (never stored).
                emit_delta(request, event.delta.text)
    return message.completion(rate_limits(stream.response.headers))
