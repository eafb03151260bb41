"""The builtin react agent on a FakeStepContext, without a server: the
reason-act loop with real tools, what the model is sent back, tool failures
fed back to the model, fallbacks, max_turns and a bad config (the same
through gRPC, with its events: tests/api/test_react.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from podium.plugins.api import Agent, AgentError, ModelPrice, ProviderError, Tool, ToolCall
from podium.plugins.builtin import ReactAgent, SimulatedProvider
from podium.plugins.builtin.calculator import CALCULATOR_TOOL
from podium.plugins.builtin.json_query import JSON_QUERY_TOOL
from podium.testing import (
    FakeStepContext,
    ProgressReport,
    ScriptedProvider,
    ToolUse,
    text_reply,
    tool_calls_reply,
)

PROMPT = {"prompt": "What do {{ input.count }} pens at 1.50 cost?"}
PRICE = ModelPrice(input=Decimal(1), output=Decimal(2))


def calc(call_id: str, expression: str) -> ToolCall:
    return ToolCall(call_id, "calculator", {"expression": expression})


async def _broken(arguments: Mapping[str, Any]) -> Any:
    raise RuntimeError("the database is down")


BROKEN = Tool("inventory", "Stock levels.", {"type": "object"}, _broken)


def test_the_agent_is_registered_and_satisfies_the_contract() -> None:
    agent = ReactAgent()
    assert isinstance(agent, Agent)
    assert agent.name == "react" and agent.version == "1" and agent.description


async def test_it_calls_tools_until_the_model_answers() -> None:
    model = ScriptedProvider(
        tool_calls_reply(calc("c1", "4 * 1.5")),
        tool_calls_reply(
            ToolCall("q1", "json_query", {"expression": "data.n + 1", "data": {"n": 6}}),
            calc("c2", "6 + 1"),
        ),
        text_reply("Six, or seven with one more.", input_tokens=300, output_tokens=8),
        name="acme",
        models=("m",),
        price=PRICE,
    )
    ctx = FakeStepContext(
        {"count": 4},
        config={**PROMPT, "provider": "acme", "model": "m", "max_turns": 5},
        tools=[CALCULATOR_TOOL, JSON_QUERY_TOOL],
        providers=[model],
    )

    output = await ReactAgent().run(ctx)

    assert output["answer"] == "Six, or seven with one more."
    assert (output["turns"], output["provider"], output["model"]) == (3, "acme", "m")
    assert output["trace"] == [
        {"turn": 1, "tool": "calculator", "arguments": {"expression": "4 * 1.5"}, "result": 6},
        {
            "turn": 2,
            "tool": "json_query",
            "arguments": {"expression": "data.n + 1", "data": {"n": 6}},
            "result": 7,
        },
        {"turn": 2, "tool": "calculator", "arguments": {"expression": "6 + 1"}, "result": 7},
    ]
    assert output["usage"] == {"input_tokens": 300, "output_tokens": 8}
    assert Decimal(output["cost"]) == Decimal("0.000316")  # 300 x $1/M + 8 x $2/M
    assert [use.name for use in ctx.tool_uses] == ["calculator", "json_query", "calculator"]
    assert ctx.reports == [
        ProgressReport(0.2, "turn 1: 1 tool call"),
        ProgressReport(0.4, "turn 2: 2 tool calls"),
    ]
    # Every turn offers the step's tools and carries the conversation so far.
    first, second, third = model.requests
    assert [t.name for t in first.tools] == ["calculator", "json_query"]
    assert first.messages[-1].content == "What do 4 pens at 1.50 cost?"
    assert [m.role for m in third.messages] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "tool",
    ]
    assert [(m.tool_call_id, m.content) for m in third.messages if m.role == "tool"] == [
        ("c1", "6.0"),  # 4 * 1.5 is a float, and JSON says so
        ("q1", "7"),
        ("c2", "7"),
    ]
    assert second.messages[1].tool_calls == (calc("c1", "4 * 1.5"),)


async def test_a_failing_tool_is_reported_to_the_model_which_carries_on() -> None:
    model = ScriptedProvider(
        tool_calls_reply(ToolCall("i1", "inventory", {}), ToolCall("x1", "shell", {"cmd": "ls"})),
        text_reply("I could not check the stock."),
    )
    ctx = FakeStepContext(
        config={"prompt": "Stock?", "provider": "scripted", "model": "scripted"},
        tools=[BROKEN],
        providers=[model],
    )
    output = await ReactAgent().run(ctx)
    assert output["answer"] == "I could not check the stock."
    errors = [(entry["tool"], entry["error"]) for entry in output["trace"]]
    assert errors == [
        ("inventory", "tool 'inventory' failed: the database is down"),
        ("shell", "tool 'shell' is not one of this step's tools (inventory)"),
    ]
    sent_back = [m.content for m in model.requests[1].messages if m.role == "tool"]
    assert sent_back == [f"error: {message}" for _, message in errors]
    assert [use.error.code for use in ctx.tool_uses if use.error] == [
        "RuntimeError",
        "podium.UnknownTool",
    ]


async def test_max_turns_without_an_answer_fails_for_good() -> None:
    model = ScriptedProvider(*(tool_calls_reply(calc(f"c{i}", "1 + 1")) for i in range(2)))
    ctx = FakeStepContext(
        config={"prompt": "Loop", "provider": "scripted", "model": "scripted", "max_turns": 2},
        tools=[CALCULATOR_TOOL],
        providers=[model],
    )
    with pytest.raises(AgentError) as raised:
        await ReactAgent().run(ctx)
    assert (raised.value.code, raised.value.retryable) == ("podium.MaxTurns", False)
    assert ctx.tool_uses == [ToolUse("calculator", {"expression": "1 + 1"}, result=2)] * 2
    assert model.pending == 0


async def test_a_provider_outage_falls_back_to_the_next_target() -> None:
    down = ScriptedProvider(ProviderError("overloaded", kind="overloaded", status=529), name="down")
    ctx = FakeStepContext(
        config={
            "prompt": "Hello",
            "provider": "down",
            "model": "big",
            "fallbacks": [{"provider": "simulated", "model": "sim-small"}],
        },
        providers=[down, SimulatedProvider(latency_ms=0)],
    )
    output = await ReactAgent().run(ctx)
    assert (output["provider"], output["model"], output["turns"]) == ("simulated", "sim-small", 1)
    assert [call.provider for call in ctx.llm_calls.calls] == ["down", "simulated"]


async def test_the_simulated_providers_script_plays_the_tool_calls() -> None:
    script = [
        {"tool_calls": [{"name": "calculator", "arguments": {"expression": "2 * 21"}}]},
        {"text": "The answer is $last_result."},
    ]
    ctx = FakeStepContext(
        config={"prompt": "Compute", "options": {"script": script}},
        tools=[CALCULATOR_TOOL],
    )
    output = await ReactAgent().run(ctx)
    assert output["answer"] == "The answer is 42."
    assert [call.request.model for call in ctx.llm_calls.calls] == ["sim-small"] * 2
    assert json.loads(json.dumps(output))["trace"][0]["result"] == 42


async def test_a_bad_config_fails_for_good_before_any_call() -> None:
    ctx = FakeStepContext(config={"prompt": "Hi", "max_turns": 0})
    with pytest.raises(AgentError) as raised:
        await ReactAgent().run(ctx)
    assert raised.value.code == "podium.InvalidConfig" and not raised.value.retryable
    assert "max_turns" in str(raised.value)
    assert ctx.llm_calls.calls == []
