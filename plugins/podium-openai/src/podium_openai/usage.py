"""OpenAI's token counts in Podium's convention (that of `Usage`):

- `input_tokens` counts every prompt token the price's input rates apply
  to, cached ones included; `cached_input_tokens` is the subset read from
  the prompt cache (OpenAI's `cached_tokens`, itself part of its prompt
  token count).
- `cache_write_tokens` are in addition to `input_tokens`: OpenAI counts the
  tokens it wrote to the cache inside its prompt tokens, so they are moved
  out of `input_tokens` (the total stays OpenAI's prompt token count).
- `reasoning_tokens` are part of `output_tokens`, as in OpenAI's counts.
"""

from __future__ import annotations

import json
from typing import Any

from openai.types import CompletionUsage
from openai.types.responses import ResponseUsage

from podium.plugins.api import Usage

__all__ = ["UNPARSED_ARGUMENTS", "parse_arguments", "usage_from_chat", "usage_from_responses"]

# Where a tool call's arguments go when they are not a JSON object (e.g. cut
# by max_tokens): the completion is kept, since its tokens were billed.
UNPARSED_ARGUMENTS = "_unparsed_arguments"


def usage_from_chat(usage: CompletionUsage) -> Usage:
    prompt = usage.prompt_tokens_details
    completion = usage.completion_tokens_details
    return _usage(
        prompt_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cached=(prompt.cached_tokens if prompt else None) or 0,
        written=(prompt.cache_write_tokens if prompt else None) or 0,
        reasoning=(completion.reasoning_tokens if completion else None) or 0,
    )


def usage_from_responses(usage: ResponseUsage) -> Usage:
    # The SDK declares the details required; an OpenAI-compatible server may omit them.
    input_details = getattr(usage, "input_tokens_details", None)
    output_details = getattr(usage, "output_tokens_details", None)
    return _usage(
        prompt_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached=getattr(input_details, "cached_tokens", None) or 0,
        written=getattr(input_details, "cache_write_tokens", None) or 0,
        reasoning=getattr(output_details, "reasoning_tokens", None) or 0,
    )


def _usage(
    *, prompt_tokens: int, output_tokens: int, cached: int, written: int, reasoning: int
) -> Usage:
    prompt_tokens = max(prompt_tokens, 0)
    written = min(max(written, 0), prompt_tokens)
    input_tokens = prompt_tokens - written
    return Usage(
        input_tokens=input_tokens,
        output_tokens=max(output_tokens, 0),
        cached_input_tokens=min(max(cached, 0), input_tokens),
        cache_write_tokens=written,
        reasoning_tokens=max(reasoning, 0),
        calls=1,
    )


def parse_arguments(text: str) -> dict[str, Any]:
    """A tool call's JSON arguments as a dict."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {UNPARSED_ARGUMENTS: text}
    return value if isinstance(value, dict) else {UNPARSED_ARGUMENTS: text}
