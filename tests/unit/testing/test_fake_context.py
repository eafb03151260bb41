"""FakeStepContext (podium.testing.fake_context): what an agent sees is what
the engine's context gives it (config as stored, progress clamped, tools run
for real with the same errors), and what the agent did is recorded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from podium.plugins.api import AgentError, StepContext, Tool, ToolSpec
from podium.plugins.builtin.calculator import CALCULATOR_TOOL
from podium.testing import DirectLlmGateway, FakeStepContext, ProgressReport, ToolUse


async def _fails(arguments: Mapping[str, Any]) -> Any:
    raise ValueError(f"cannot {arguments['what']}")


async def _refuses(arguments: Mapping[str, Any]) -> Any:
    raise AgentError("not today", code="Refused", retryable=False)


async def _odd(arguments: Mapping[str, Any]) -> Any:
    return {"set": {1, 2}}  # not JSON: shown by its repr, as in an event


FAILING = Tool("failing", "Always fails.", {"type": "object"}, _fails)
REFUSING = Tool("refusing", "Refuses.", {"type": "object"}, _refuses)
ODD = Tool("odd", "Returns what JSON cannot hold.", {"type": "object"}, _odd)


def test_it_is_a_step_context_with_sensible_defaults() -> None:
    ctx: StepContext = FakeStepContext()
    assert (ctx.input, ctx.config, ctx.attempt) == ({}, {}, 1)
    assert ctx.run_id and ctx.step_id
    assert ctx.tools == []


def test_the_config_arrives_as_from_a_stored_workflow() -> None:
    # Through a google.protobuf.Struct: JSON numbers, integral ones back as ints.
    ctx = FakeStepContext(config={"n": 3.0, "rate": 0.5, "nested": {"k": [1.0, "x"]}})
    assert ctx.config == {"n": 3, "rate": 0.5, "nested": {"k": [1, "x"]}}
    assert isinstance(ctx.config["n"], int)


def test_input_and_config_are_copies() -> None:
    data = {"items": [1, 2]}
    ctx = FakeStepContext(data, config={"list": [1]})
    data["items"].append(3)
    assert ctx.input == {"items": [1, 2]}


def test_input_that_json_cannot_hold_is_refused() -> None:
    with pytest.raises(ValueError):
        FakeStepContext({"when": object()})


def test_reports_are_recorded_and_clamped() -> None:
    ctx = FakeStepContext()
    ctx.report(0.5, "half")
    ctx.report(1.7)
    ctx.report(-1, "before")
    assert ctx.reports == [
        ProgressReport(0.5, "half"),
        ProgressReport(1.0, ""),
        ProgressReport(0.0, "before"),
    ]


async def test_tools_run_for_real_and_are_recorded() -> None:
    ctx = FakeStepContext(tools=[CALCULATOR_TOOL, ODD])
    assert [spec.name for spec in ctx.tools] == ["calculator", "odd"]
    assert ctx.tools[0] == ToolSpec(
        "calculator", CALCULATOR_TOOL.description, CALCULATOR_TOOL.parameters
    )
    assert await ctx.call_tool("calculator", {"expression": "6 * 7"}) == 42
    assert await ctx.call_tool("odd", {}) == repr({"set": {1, 2}})
    assert ctx.tool_uses == [
        ToolUse("calculator", {"expression": "6 * 7"}, result=42),
        ToolUse("odd", {}, result=repr({"set": {1, 2}})),
    ]


async def test_a_tool_outside_the_step_is_an_unknown_tool() -> None:
    ctx = FakeStepContext(tools=[CALCULATOR_TOOL])
    with pytest.raises(AgentError) as raised:
        await ctx.call_tool("json_query", {})
    assert raised.value.code == "podium.UnknownTool"
    assert "calculator" in str(raised.value)
    assert ctx.tool_uses == [ToolUse("json_query", {}, error=raised.value)]


async def test_a_failing_tool_fails_as_the_engine_reports_it() -> None:
    ctx = FakeStepContext(tools=[FAILING, REFUSING])
    with pytest.raises(AgentError) as failed:
        await ctx.call_tool("failing", {"what": "divide"})
    assert failed.value.code == "ValueError"
    assert str(failed.value) == "tool 'failing' failed: cannot divide"
    # An AgentError of the tool's own goes through as it is.
    with pytest.raises(AgentError) as refused:
        await ctx.call_tool("refusing", {})
    assert (refused.value.code, refused.value.retryable) == ("Refused", False)
    assert [use.error for use in ctx.tool_uses] == [failed.value, refused.value]


async def test_the_default_llm_is_the_simulated_provider_called_directly() -> None:
    from podium.plugins.api import CompletionRequest, Message

    ctx = FakeStepContext()
    result = await ctx.llm.complete(
        "simulated", CompletionRequest("sim-small", [Message("user", "hi")])
    )
    assert result.provider == "simulated" and result.model == "sim-small"
    assert result.cost > 0
    assert ctx.llm_calls.requests[0].max_tokens == 1024  # the gateway's default


def test_llm_calls_needs_the_default_gateway() -> None:
    class Silent:
        async def complete(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("not called")

    ctx = FakeStepContext(llm=Silent())
    with pytest.raises(TypeError):
        _ = ctx.llm_calls
    assert isinstance(FakeStepContext().llm_calls, DirectLlmGateway)
