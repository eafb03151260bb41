"""Reassembling a streamed message from its events.

Usage arrives in two parts: `message_start` carries the input side (input
tokens, cache reads and writes) and `message_delta` the cumulative output
count (and, in newer API versions, cumulative input counts too, which then
win). A stream that ends before `message_delta` has no final usage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from anthropic.types import MessageDeltaUsage, RawMessageStreamEvent
from anthropic.types import Usage as AnthropicUsage

from podium.plugins.api import Completion, ProviderError, ToolCall
from podium_anthropic.translate import finish_reason, podium_usage

__all__ = ["StreamedMessage"]


@dataclass(slots=True)
class _ToolUse:
    id: str
    name: str
    input: dict[str, Any]
    partial_json: list[str] = field(default_factory=list)

    def arguments(self) -> dict[str, Any]:
        if not self.partial_json:
            return self.input
        text = "".join(self.partial_json)
        try:
            arguments = json.loads(text)
        except json.JSONDecodeError:
            arguments = None
        if not isinstance(arguments, dict):
            raise ProviderError(
                f"tool call {self.name!r} streamed arguments that are no JSON object: {text!r}",
                kind="server_error",
                # Usage arrived: the call was billed although its result is unusable.
                charge_reservation=True,
            )
        return arguments


class StreamedMessage:
    def __init__(self) -> None:
        self.model = ""
        self.stop_reason: str | None = None
        self._start_usage: AnthropicUsage | None = None
        self._final_usage: MessageDeltaUsage | None = None
        # By content block index, in arrival order.
        self._blocks: dict[int, list[str] | _ToolUse] = {}

    @property
    def has_usage(self) -> bool:
        """Has the final usage (message_delta) arrived?"""
        return self._final_usage is not None

    def add(self, event: RawMessageStreamEvent) -> None:
        if event.type == "message_start":
            self.model = event.message.model
            self._start_usage = event.message.usage
        elif event.type == "content_block_start":
            block = event.content_block
            if block.type == "text":
                self._blocks[event.index] = [block.text]
            elif block.type == "tool_use":
                self._blocks[event.index] = _ToolUse(block.id, block.name, dict(block.input))
        elif event.type == "content_block_delta":
            target = self._blocks.get(event.index)
            delta = event.delta
            if delta.type == "text_delta" and isinstance(target, list):
                target.append(delta.text)
            elif delta.type == "input_json_delta" and isinstance(target, _ToolUse):
                target.partial_json.append(delta.partial_json)
        elif event.type == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            self._final_usage = event.usage

    def completion(self, remaining: tuple[int | None, int | None]) -> Completion:
        final = self._final_usage
        if final is None:
            raise ProviderError(
                "the Anthropic stream ended before its usage arrived",
                kind="connection",
                charge_reservation=True,
            )
        # What message_start said, for the counts message_delta leaves out.
        start = self._start_usage or AnthropicUsage(input_tokens=0, output_tokens=0)
        details = final.output_tokens_details or start.output_tokens_details
        usage = podium_usage(
            input_tokens=_latest(final.input_tokens, start.input_tokens),
            cache_read=_latest(final.cache_read_input_tokens, start.cache_read_input_tokens),
            cache_write=_latest(
                final.cache_creation_input_tokens, start.cache_creation_input_tokens
            ),
            output_tokens=final.output_tokens,
            thinking_tokens=details.thinking_tokens if details is not None else 0,
        )
        text: list[str] = []
        calls: list[ToolCall] = []
        for _, block in sorted(self._blocks.items()):
            if isinstance(block, _ToolUse):
                calls.append(ToolCall(id=block.id, name=block.name, arguments=block.arguments()))
            else:
                text.extend(block)
        return Completion(
            text="".join(text),
            usage=usage,
            finish_reason=finish_reason(self.stop_reason),
            model=self.model,
            tool_calls=tuple(calls),
            remaining_requests=remaining[0],
            remaining_tokens=remaining[1],
        )


def _latest(cumulative: int | None, at_start: int | None) -> int:
    """A count from message_delta when it has one, else from message_start."""
    if cumulative is not None:
        return cumulative
    return at_start or 0
