"""The hooks a Podium plugin implements.

Hooks only register objects (agents, providers, tools); the objects do the
work in their own `async` methods. Hooks are therefore synchronous, cheap and
called once per process, when plugins are loaded.

A plugin is a module (or any object) with functions marked `@hookimpl`,
declared under the `podium` entry-point group:

    [project.entry-points.podium]
    my_plugin = "my_package.plugin"
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from podium.plugins.api import Agent, Provider, Tool

PROJECT_NAME = "podium"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_agents(register: Callable[[Agent], None]) -> None:
    """Registers the plugin's agents: call `register(agent)` once per agent.

    An agent's `name` is what a workflow step refers to; the first plugin to
    register a name keeps it and a later one is reported as failed.
    """


@hookspec
def register_providers(register: Callable[[Provider], None]) -> None:
    """Registers the plugin's LLM providers: call `register(provider)` once
    per provider. Agents reach providers by `name` through the governed
    gateway (`ctx.llm`), never directly."""


@hookspec
def register_tools(register: Callable[[Tool], None]) -> None:
    """Registers the plugin's tools: call `register(tool)` once per tool, each
    a `Tool` with a JSON schema of its arguments and an `async` callable."""
