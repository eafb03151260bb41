"""The `react` agent: a model that reasons and acts with the step's tools.

Each turn asks the model (through the governed gateway, so every call is
admitted by breakers, quotas and budgets and recorded as an LLM_CALL) for the
next move, offering the step's tools. When it asks for tool calls, each runs
through `ctx.call_tool` (recorded as TOOL_CALLED and TOOL_RESULT events) and
its result goes back into the conversation; a failing tool is reported to
the model as "error: ..." rather than failing the step, since the model may
recover. The first answer without tool calls is the final answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from podium.plugins.api import (
    AgentError,
    Catalog,
    CompletionRequest,
    ConfigProblem,
    Message,
    StepContext,
)
from podium.plugins.builtin import config_schemas
from podium.plugins.builtin.llm import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_MODEL,
    DEFAULT_PROVIDER,
    catalog_problems,
    fallback_targets,
    render_messages,
    setting_problems,
)
from podium.plugins.builtin.settings import as_int, raise_if_invalid, unknown_settings
from podium.plugins.builtin.structured import parse_answer, response_format

_SETTINGS = (
    "provider",
    "model",
    "prompt",
    "system",
    "max_turns",
    "max_tokens",
    "temperature",
    "options",
    "fallbacks",
    "response_format",
    "stream",
)
DEFAULT_MAX_TURNS = 8
MAX_TURNS_LIMIT = 50
MAX_TURNS_CODE = "podium.MaxTurns"


class ReactAgent:
    """Config: like `llm` (provider, model, system, prompt, max_tokens per
    call, temperature, options, fallbacks) plus max_turns (model calls, 1 to
    50, default 8). The tools are the step's `tools`.

    Output: {answer, turns, trace: [{turn, tool, arguments, result | error}],
    usage: {input_tokens, output_tokens}, cost, provider, model}."""

    name = "react"
    description = "Answers a prompt with an LLM that may call the step's tools (ReAct loop)."
    version = "1"
    config_schema = config_schemas.REACT

    async def run(self, ctx: StepContext) -> Any:
        config = ctx.config
        raise_if_invalid(_problems(config))
        structured = response_format(config)
        provider = str(config.get("provider", DEFAULT_PROVIDER))
        max_turns = as_int(config.get("max_turns", DEFAULT_MAX_TURNS)) or DEFAULT_MAX_TURNS
        temperature = config.get("temperature")
        messages = render_messages(config, ctx.input)
        tools = list(ctx.tools)
        fallbacks = fallback_targets(config)
        trace: list[dict[str, Any]] = []
        input_tokens = output_tokens = 0
        cost = Decimal(0)
        for turn in range(1, max_turns + 1):
            request = CompletionRequest(
                model=str(config.get("model", DEFAULT_MODEL)),
                messages=list(messages),
                max_tokens=as_int(config.get("max_tokens", DEFAULT_MAX_TOKENS)),
                temperature=float(temperature) if temperature is not None else None,
                options=dict(config.get("options") or {}),
                tools=tools,
                response_format=structured,
                stream=bool(config.get("stream", False)),
            )
            result = await ctx.llm.complete(provider, request, fallbacks=fallbacks)
            completion = result.completion
            input_tokens += completion.usage.input_tokens
            output_tokens += completion.usage.output_tokens
            cost += result.cost
            if not completion.tool_calls:
                answer = completion.text
                return {
                    "answer": answer if structured is None else parse_answer(answer, structured),
                    "turns": turn,
                    "trace": trace,
                    "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
                    "cost": str(cost),
                    "provider": result.provider,
                    "model": result.model,
                    "finish_reason": completion.finish_reason,
                }
            messages.append(
                Message("assistant", completion.text, tool_calls=tuple(completion.tool_calls))
            )
            for call in completion.tool_calls:
                entry: dict[str, Any] = {
                    "turn": turn,
                    "tool": call.name,
                    "arguments": _plain(call.arguments),
                }
                try:
                    value = await ctx.call_tool(call.name, call.arguments)
                except AgentError as error:
                    content = f"error: {error}"
                    entry["error"] = str(error)
                else:
                    content = json.dumps(value)
                    entry["result"] = value
                trace.append(entry)
                messages.append(Message("tool", content, tool_call_id=call.id, name=call.name))
            count = len(completion.tool_calls)
            plural = "" if count == 1 else "s"
            ctx.report(turn / max_turns, f"turn {turn}: {count} tool call{plural}")
        raise AgentError(
            f"no final answer after {max_turns} turns (max_turns)",
            code=MAX_TURNS_CODE,
            retryable=False,
        )

    def check_config(self, config: Mapping[str, Any], catalog: Catalog) -> list[ConfigProblem]:
        return [*_problems(config), *catalog_problems(config, catalog)]


def _problems(config: Mapping[str, Any]) -> Iterator[ConfigProblem]:
    yield from unknown_settings(config, _SETTINGS)
    yield from setting_problems(config)
    if "max_turns" in config:
        max_turns = as_int(config["max_turns"])
        if max_turns is None or not 1 <= max_turns <= MAX_TURNS_LIMIT:
            yield ("max_turns", f"must be an integer from 1 to {MAX_TURNS_LIMIT}")


def _plain(value: Any) -> Any:
    """Tool call arguments as JSON data (a model's arguments always are)."""
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return repr(value)
