"""The builtin plugin: Podium's own agents, the offline `simulated` provider
and the `calculator`, `json_query` and `current_time` tools, registered
through the same hooks as any plugin."""

from __future__ import annotations

from collections.abc import Callable

from podium.plugins.api import Agent, Provider, Tool
from podium.plugins.builtin.calculator import CALCULATOR_TOOL
from podium.plugins.builtin.current_time import CURRENT_TIME_TOOL
from podium.plugins.builtin.echo import EchoAgent
from podium.plugins.builtin.flaky import FlakyAgent
from podium.plugins.builtin.json_query import JSON_QUERY_TOOL
from podium.plugins.builtin.llm import LlmAgent
from podium.plugins.builtin.react import ReactAgent
from podium.plugins.builtin.simulated_provider import SimulatedProvider
from podium.plugins.builtin.transform import TransformAgent
from podium.plugins.hookspecs import hookimpl

__all__ = [
    "EchoAgent",
    "FlakyAgent",
    "LlmAgent",
    "ReactAgent",
    "SimulatedProvider",
    "TransformAgent",
    "register_agents",
    "register_providers",
    "register_tools",
]


@hookimpl
def register_agents(register: Callable[[Agent], None]) -> None:
    for agent in (EchoAgent(), FlakyAgent(), LlmAgent(), ReactAgent(), TransformAgent()):
        register(agent)


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    register(SimulatedProvider())


@hookimpl
def register_tools(register: Callable[[Tool], None]) -> None:
    for tool in (CALCULATOR_TOOL, JSON_QUERY_TOOL, CURRENT_TIME_TOOL):
        register(tool)
