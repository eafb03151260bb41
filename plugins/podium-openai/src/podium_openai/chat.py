"""The Chat Completions API (`POST /chat/completions`): requests from
Podium's messages and tools, completions from OpenAI's answers and streams."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import openai
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
)
from openai.types.chat.completion_create_params import (
    CompletionCreateParamsNonStreaming,
    CompletionCreateParamsStreaming,
    ResponseFormat,
)

from podium.plugins.api import (
    Completion,
    CompletionRequest,
    Message,
    ProviderError,
    ToolCall,
    ToolSpec,
    Usage,
    emit_delta,
)
from podium_openai.errors import provider_error, with_rate_limits
from podium_openai.settings import Settings
from podium_openai.usage import parse_arguments, usage_from_chat

__all__ = ["complete_chat"]

# Request options (CompletionRequest.options) sent as they are; others are
# ignored (they may be meant for another provider of a fallback chain).
OPTIONS = frozenset(
    {
        "frequency_penalty",
        "logit_bias",
        "metadata",
        "parallel_tool_calls",
        "presence_penalty",
        "prompt_cache_key",
        "prompt_cache_retention",
        "reasoning_effort",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "tool_choice",
        "top_p",
        "user",
        "verbosity",
    }
)
_FINISH_REASONS = {"function_call": "tool_calls"}


async def complete_chat(
    client: AsyncOpenAI, request: CompletionRequest, settings: Settings
) -> Completion:
    params = _params(request, settings)
    extra = {key: value for key, value in request.options.items() if key in OPTIONS}
    try:
        if not request.stream:
            raw = await client.chat.completions.with_raw_response.create(
                **params, extra_body=extra or None
            )
            return with_rate_limits(_completion(raw.parse()), raw.headers)
        streaming: CompletionCreateParamsStreaming = {
            **params,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        stream = await client.chat.completions.create(**streaming, extra_body=extra or None)
    except openai.OpenAIError as error:
        raise provider_error(error) from error
    completion = await _read_stream(stream, request)
    return with_rate_limits(completion, stream.response.headers)


def _params(request: CompletionRequest, settings: Settings) -> CompletionCreateParamsNonStreaming:
    params: CompletionCreateParamsNonStreaming = {
        "model": request.model,
        "messages": [_message(message) for message in request.messages],
    }
    if request.max_tokens is not None:
        params[settings.max_tokens_param(request.model)] = request.max_tokens
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.tools:
        params["tools"] = [_tool(tool) for tool in request.tools]
    if request.response_format is not None:
        params["response_format"] = _response_format(request.response_format)
    return params


def _message(message: Message) -> ChatCompletionMessageParam:
    role = message.role
    if role == "system":
        return {"role": "system", "content": message.content}
    if role == "user":
        if message.name:
            return {"role": "user", "content": message.content, "name": message.name}
        return {"role": "user", "content": message.content}
    if role == "assistant":
        if not message.tool_calls:
            return {"role": "assistant", "content": message.content}
        return {
            "role": "assistant",
            # OpenAI wants null, not "", beside tool calls with no text.
            "content": message.content or None,
            "tool_calls": [_tool_call(call) for call in message.tool_calls],
        }
    if role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    raise ProviderError(f"unknown message role {role!r}", kind="bad_request", status=400)


def _tool_call(call: ToolCall) -> ChatCompletionMessageFunctionToolCallParam:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(dict(call.arguments))},
    }


def _tool(tool: ToolSpec) -> ChatCompletionFunctionToolParam:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": dict(tool.parameters) or {"type": "object", "properties": {}},
        },
    }


def _response_format(spec: Mapping[str, Any]) -> ResponseFormat:
    """Podium's flat {"type": "json_schema", "name", "schema", "strict"} in
    Chat Completions' nested form; other formats pass as they are."""
    if spec.get("type") != "json_schema" or "json_schema" in spec:
        return cast(ResponseFormat, dict(spec))
    schema: dict[str, Any] = {"name": spec.get("name") or "response"}
    for key in ("schema", "strict", "description"):
        if key in spec:
            schema[key] = spec[key]
    return cast(ResponseFormat, {"type": "json_schema", "json_schema": schema})


def _completion(answer: ChatCompletion) -> Completion:
    if answer.usage is None:
        raise ProviderError(
            "OpenAI: the answer has no usage", kind="server_error", charge_reservation=True
        )
    if not answer.choices:
        return Completion(text="", usage=usage_from_chat(answer.usage), model=answer.model)
    choice = answer.choices[0]
    calls = tuple(
        ToolCall(call.id, call.function.name, parse_arguments(call.function.arguments))
        for call in choice.message.tool_calls or ()
        if call.type == "function"
    )
    return Completion(
        text=choice.message.content or "",
        usage=usage_from_chat(answer.usage),
        finish_reason=_finish_reason(choice.finish_reason, bool(calls)),
        model=answer.model,
        tool_calls=calls,
    )


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


async def _read_stream(
    stream: AsyncStream[ChatCompletionChunk], request: CompletionRequest
) -> Completion:
    model = request.model
    text: list[str] = []
    calls: dict[int, _PartialCall] = {}
    finish_reason: str | None = None
    usage: Usage | None = None
    try:
        async with stream:
            async for chunk in stream:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = usage_from_chat(chunk.usage)
                for choice in chunk.choices[:1]:
                    delta = choice.delta
                    if delta.content:
                        text.append(delta.content)
                        emit_delta(request, delta.content)
                    for part in delta.tool_calls or ():
                        call = calls.setdefault(part.index, _PartialCall())
                        call.id = part.id or call.id
                        if part.function is not None:
                            call.name = part.function.name or call.name
                            call.arguments.append(part.function.arguments or "")
                    finish_reason = choice.finish_reason or finish_reason
    except openai.OpenAIError as error:
        raise provider_error(error, mid_stream=True) from error
    if usage is None:
        raise _no_usage(finished=finish_reason is not None)
    tool_calls = tuple(
        ToolCall(call.id, call.name, parse_arguments("".join(call.arguments)))
        for _, call in sorted(calls.items())
    )
    return Completion(
        text="".join(text),
        usage=usage,
        finish_reason=_finish_reason(finish_reason, bool(tool_calls)),
        model=model,
        tool_calls=tool_calls,
    )


def _no_usage(*, finished: bool) -> ProviderError:
    if finished:
        # A server that ignores stream_options.include_usage: the call was
        # billed, but how much is unknown.
        return ProviderError(
            "OpenAI: the stream finished without usage (is stream_options.include_usage "
            "supported by this server?)",
            kind="server_error",
            charge_reservation=True,
        )
    return ProviderError(
        "OpenAI: the stream ended before it finished, without usage",
        kind="connection",
        charge_reservation=True,
    )


def _finish_reason(reason: str | None, has_calls: bool) -> str:
    if reason is None:
        return "tool_calls" if has_calls else "stop"
    return _FINISH_REASONS.get(reason, reason)
