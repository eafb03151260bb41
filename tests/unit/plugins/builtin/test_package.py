"""The builtin plugin as a whole (podium.plugins.builtin): its agents, provider
and tools are registered and satisfy the plugin contract."""

from __future__ import annotations

import pytest

from podium.plugins.api import (
    Agent,
    Provider,
    Tool,
)
from podium.plugins.builtin import (
    EchoAgent,
    FlakyAgent,
    LlmAgent,
    SimulatedProvider,
    TransformAgent,
)
from podium.plugins.builtin.calculator import CALCULATOR_TOOL
from podium.plugins.builtin.current_time import CURRENT_TIME_TOOL
from podium.plugins.builtin.json_query import JSON_QUERY_TOOL
from podium.plugins.manager import load_plugins


def test_builtin_objects_satisfy_the_contract() -> None:
    for agent in (EchoAgent(), FlakyAgent(), LlmAgent(), TransformAgent()):
        assert isinstance(agent, Agent)
        assert agent.version == "1" and agent.description
    assert isinstance(SimulatedProvider(), Provider)


BUILTIN_TOOLS = ("calculator", "json_query", "current_time")


def test_builtin_tools_are_registered_and_cel_is_gone() -> None:
    names = load_plugins(include_entry_points=False).registry.tool_names
    assert set(BUILTIN_TOOLS) <= set(names)
    assert "cel" not in names


@pytest.mark.parametrize("tool", [CALCULATOR_TOOL, JSON_QUERY_TOOL, CURRENT_TIME_TOOL])
def test_each_tool_has_an_object_schema(tool: Tool) -> None:
    assert tool.name in BUILTIN_TOOLS
    assert tool.description
    schema = tool.parameters
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema.get("required", [])) <= set(schema["properties"])
    for spec in schema["properties"].values():
        assert spec["description"]
