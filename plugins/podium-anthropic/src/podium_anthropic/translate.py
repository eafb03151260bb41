"""Podium's completion request and result <-> the Messages API.

Pure functions, no network: what `AnthropicProvider` sends and how it reads
what comes back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from anthropic.types import Message as AnthropicMessage
from anthropic.types import MessageDeltaUsage
from anthropic.types import Usage as AnthropicUsage

from podium.plugins.api import (
    Completion,
    CompletionRequest,
    Message,
    ProviderError,
    ToolCall,
    ToolSpec,
    Usage,
)

__all__ = [
    "JSON_OBJECT_INSTRUCTION",
    "PASSTHROUGH_OPTIONS",
    "build_body",
    "completion_from_message",
    "finish_reason",
    "podium_usage",
    "usage_from",
]

# Request options (CompletionRequest.options) sent to the API as they are;
# other keys belong to other providers and are ignored.
PASSTHROUGH_OPTIONS = frozenset(
    {
        "cache_control",
        "metadata",
        "service_tier",
        "stop_sequences",
        "thinking",
        "tool_choice",
        "top_k",
        "top_p",
    }
)
# The Messages API has no bare "any JSON object" mode: it is asked for in words.
JSON_OBJECT_INSTRUCTION = "Respond with a single JSON object and nothing else."

_FINISH_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}


def build_body(request: CompletionRequest, default_max_tokens: int) -> dict[str, Any]:
    """The keyword arguments of `messages.create` for `request`, less `stream`;
    settings the SDK has no parameter for are under `extra_body`."""
    system, messages = _conversation(request.messages)
    extra: dict[str, Any] = {}
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens or default_max_tokens,
        "messages": messages,
    }
    if request.temperature is not None:
        extra["temperature"] = request.temperature
    if request.tools:
        body["tools"] = [_tool(spec) for spec in request.tools]
    output_config: dict[str, Any] = {}
    format_ = request.response_format
    if format_ is not None:
        kind = format_.get("type")
        if kind == "json_schema":
            schema = format_.get("schema")
            if not isinstance(schema, Mapping):
                raise ProviderError(
                    "response_format json_schema needs a `schema` mapping",
                    kind="bad_request",
                )
            output_config["format"] = {"type": "json_schema", "schema": dict(schema)}
        elif kind == "json_object":
            system = "\n\n".join(part for part in (system, JSON_OBJECT_INSTRUCTION) if part)
        elif kind not in (None, "text"):
            raise ProviderError(
                f"response_format type {kind!r} is not supported: use json_schema or json_object",
                kind="bad_request",
            )
    effort = request.options.get("effort")
    if effort is not None:
        output_config["effort"] = effort
    if output_config:
        body["output_config"] = output_config
    if system:
        body["system"] = system
    for key in sorted(PASSTHROUGH_OPTIONS & request.options.keys()):
        extra[key] = request.options[key]
    if extra:
        body["extra_body"] = extra
    return body


def _conversation(messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    """The system prompt and the turns. Consecutive messages of one role are
    merged into one turn (so tool results answering one assistant turn travel
    together, as the API requires), and tool results become user turns."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            if message.content:
                system.append(message.content)
            continue
        role, blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return "\n\n".join(system), turns


def _blocks(message: Message) -> tuple[str, list[dict[str, Any]]]:
    if message.role == "tool":
        if not message.tool_call_id:
            raise ProviderError("a tool message needs its tool_call_id", kind="bad_request")
        result = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        return "user", [{**result, "content": message.content}]
    if message.role not in ("user", "assistant"):
        raise ProviderError(f"unknown message role {message.role!r}", kind="bad_request")
    # The API rejects empty text blocks.
    blocks: list[dict[str, Any]] = (
        [{"type": "text", "text": message.content}] if message.content else []
    )
    if message.role == "assistant":
        blocks += [
            {"type": "tool_use", "id": call.id, "name": call.name, "input": dict(call.arguments)}
            for call in message.tool_calls
        ]
    return message.role, blocks


def _tool(spec: ToolSpec) -> dict[str, Any]:
    schema = dict(spec.parameters) or {"type": "object", "properties": {}}
    tool: dict[str, Any] = {"name": spec.name, "input_schema": schema}
    if spec.description:
        tool["description"] = spec.description
    return tool


def finish_reason(stop_reason: str | None) -> str:
    return _FINISH_REASONS.get(stop_reason or "", "stop")


def usage_from(reported: AnthropicUsage | MessageDeltaUsage) -> Usage:
    details = reported.output_tokens_details
    return podium_usage(
        input_tokens=reported.input_tokens or 0,
        cache_read=reported.cache_read_input_tokens or 0,
        cache_write=reported.cache_creation_input_tokens or 0,
        output_tokens=reported.output_tokens,
        thinking_tokens=details.thinking_tokens if details is not None else 0,
    )


def podium_usage(
    *,
    input_tokens: int,
    cache_read: int,
    cache_write: int,
    output_tokens: int,
    thinking_tokens: int,
) -> Usage:
    """Anthropic's token counts in Podium's convention (podium.governance.prices).

    Anthropic's `input_tokens` excludes both cache reads and cache writes,
    which it reports beside it. Podium's `input_tokens` counts every input
    token, cache reads included as the subset `cached_input_tokens`, and
    counts cache writes apart (`cache_write_tokens`). So Podium's input is
    Anthropic's input plus cache reads, and the cost, input x rate + reads x
    read rate + writes x write rate, is the bill. Thinking tokens are part of
    the output tokens in both."""
    return Usage(
        input_tokens=input_tokens + cache_read,
        output_tokens=output_tokens,
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=thinking_tokens,
        calls=1,
    )


def completion_from_message(
    message: AnthropicMessage,
    remaining: tuple[int | None, int | None] = (None, None),
) -> Completion:
    text: list[str] = []
    calls: list[ToolCall] = []
    for block in message.content:
        if block.type == "text":
            text.append(block.text)
        elif block.type == "tool_use":
            calls.append(ToolCall(id=block.id, name=block.name, arguments=dict(block.input)))
    return Completion(
        text="".join(text),
        usage=usage_from(message.usage),
        finish_reason=finish_reason(message.stop_reason),
        model=message.model,
        tool_calls=tuple(calls),
        remaining_requests=remaining[0],
        remaining_tokens=remaining[1],
    )
