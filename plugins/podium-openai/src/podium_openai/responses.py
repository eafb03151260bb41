"""The Responses API (`POST /responses`): input items from Podium's
messages (function_call / function_call_output items for tool turns),
completions from OpenAI's responses and their event streams."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, cast

import openai
from openai import AsyncOpenAI, AsyncStream
from openai.types.responses import (
    FunctionToolParam,
    Response,
    ResponseFormatTextConfigParam,
    ResponseInputItemParam,
    ResponseStreamEvent,
)
from openai.types.responses.response_create_params import (
    ResponseCreateParamsNonStreaming,
    ResponseCreateParamsStreaming,
)

from podium.plugins.api import (
    Completion,
    CompletionRequest,
    Message,
    ProviderError,
    ToolCall,
    ToolSpec,
    emit_delta,
)
from podium_openai.errors import provider_error, with_rate_limits
from podium_openai.usage import parse_arguments, usage_from_responses

__all__ = ["complete_responses"]

# Request options sent as they are (see chat.OPTIONS); `reasoning_effort`
# becomes {"reasoning": {"effort": ...}}, as in Chat Completions.
OPTIONS = frozenset(
    {
        "include",
        "max_tool_calls",
        "metadata",
        "parallel_tool_calls",
        "prompt_cache_key",
        "prompt_cache_retention",
        "reasoning",
        "safety_identifier",
        "service_tier",
        "store",
        "tool_choice",
        "top_p",
        "truncation",
        "user",
    }
)
_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


async def complete_responses(client: AsyncOpenAI, request: CompletionRequest) -> Completion:
    params = _params(request)
    extra = _extra_body(request.options)
    try:
        if not request.stream:
            raw = await client.responses.with_raw_response.create(
                **params, extra_body=extra or None
            )
            return with_rate_limits(_completion(raw.parse()), raw.headers)
        streaming: ResponseCreateParamsStreaming = {**params, "stream": True}
        stream = await client.responses.create(**streaming, extra_body=extra or None)
    except openai.OpenAIError as error:
        raise provider_error(error) from error
    completion = await _read_stream(stream, request)
    return with_rate_limits(completion, stream.response.headers)


def _params(request: CompletionRequest) -> ResponseCreateParamsNonStreaming:
    params: ResponseCreateParamsNonStreaming = {
        "model": request.model,
        "input": [item for message in request.messages for item in _items(message)],
    }
    if request.max_tokens is not None:
        params["max_output_tokens"] = request.max_tokens
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.tools:
        params["tools"] = [_tool(tool) for tool in request.tools]
    if request.response_format is not None:
        params["text"] = {"format": _text_format(request.response_format)}
    return params


def _extra_body(options: Mapping[str, Any]) -> dict[str, Any]:
    extra = {key: value for key, value in options.items() if key in OPTIONS}
    effort = options.get("reasoning_effort")
    if effort is not None:
        reasoning = extra.get("reasoning")
        extra["reasoning"] = {
            **(reasoning if isinstance(reasoning, Mapping) else {}),
            "effort": effort,
        }
    return extra


def _items(message: Message) -> Iterator[ResponseInputItemParam]:
    role = message.role
    if role in ("system", "user"):
        yield {"role": "system" if role == "system" else "user", "content": message.content}
    elif role == "assistant":
        if message.content or not message.tool_calls:
            yield {"role": "assistant", "content": message.content}
        for call in message.tool_calls:
            yield {
                "type": "function_call",
                "call_id": call.id,
                "name": call.name,
                "arguments": json.dumps(dict(call.arguments)),
            }
    elif role == "tool":
        yield {
            "type": "function_call_output",
            "call_id": message.tool_call_id,
            "output": message.content,
        }
    else:
        raise ProviderError(f"unknown message role {role!r}", kind="bad_request", status=400)


def _tool(tool: ToolSpec) -> FunctionToolParam:
    return {
        "type": "function",
        "name": tool.name,
        "description": tool.description,
        "parameters": dict(tool.parameters) or {"type": "object", "properties": {}},
        # Strict mode rejects schemas that are not closed; the caller's schema is taken as is.
        "strict": False,
    }


def _text_format(spec: Mapping[str, Any]) -> ResponseFormatTextConfigParam:
    """Chat Completions' nested json_schema form is flattened; Podium's
    flat form is what the Responses API takes."""
    nested = spec.get("json_schema")
    if spec.get("type") == "json_schema" and isinstance(nested, Mapping):
        return cast(ResponseFormatTextConfigParam, {"type": "json_schema", **nested})
    if spec.get("type") == "json_schema" and "name" not in spec:
        return cast(ResponseFormatTextConfigParam, {**spec, "name": "response"})
    return cast(ResponseFormatTextConfigParam, dict(spec))


def _completion(response: Response) -> Completion:
    if response.status == "failed":
        raise _failed(response)
    if response.usage is None:
        raise ProviderError(
            "OpenAI: the response has no usage", kind="server_error", charge_reservation=True
        )
    calls = tuple(
        ToolCall(item.call_id, item.name, parse_arguments(item.arguments))
        for item in response.output
        if item.type == "function_call"
    )
    return Completion(
        text=response.output_text,
        usage=usage_from_responses(response.usage),
        finish_reason=_finish_reason(response, bool(calls)),
        model=response.model,
        tool_calls=calls,
    )


async def _read_stream(
    stream: AsyncStream[ResponseStreamEvent], request: CompletionRequest
) -> Completion:
    final: Response | None = None
    try:
        async with stream:
            async for event in stream:
                if event.type == "response.output_text.delta":
                    emit_delta(request, event.delta)
                elif (
                    event.type == "response.completed"
                    or event.type == "response.incomplete"
                    or event.type == "response.failed"
                ):
                    final = event.response
                elif event.type == "error":
                    raise ProviderError(
                        f"OpenAI: {event.message} (the stream broke before usage was reported)",
                        kind="server_error",
                        charge_reservation=True,
                    )
    except openai.OpenAIError as error:
        raise provider_error(error, mid_stream=True) from error
    if final is None:
        raise ProviderError(
            "OpenAI: the stream ended before the response completed, without usage",
            kind="connection",
            charge_reservation=True,
        )
    if final.status == "failed":
        raise _failed(final)
    return _completion(final)


def _failed(response: Response) -> ProviderError:
    error = response.error
    code = error.code if error is not None else "server_error"
    message = error.message if error is not None else "the response failed"
    kind = "rate_limited" if code == "rate_limit_exceeded" else "server_error"
    return ProviderError(
        f"OpenAI: {code}: {message}",
        kind=kind,
        # The model may have run (and been billed) before it failed; an
        # error carries no usage, so governance charges the reservation.
        charge_reservation=True,
    )


def _finish_reason(response: Response, has_calls: bool) -> str:
    if response.status == "incomplete":
        reason = response.incomplete_details.reason if response.incomplete_details else None
        return _INCOMPLETE_REASONS.get(reason or "", "length")
    return "tool_calls" if has_calls else "stop"
