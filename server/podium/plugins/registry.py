"""What the loaded plugins provide, by name, with the plugin that provided it.

The registry checks each object against the plugin contract when it is
added, so a malformed agent is rejected at load time (and blamed on its
plugin) rather than failing the first run that uses it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from podium.core.jsonvalues import NotJsonCompatible, json_compatible
from podium.core.schemas import schema_problem
from podium.plugins.api import AGENT_SCHEMAS, Agent, Provider, Tool

__all__ = ["AgentEntry", "ProviderEntry", "RegistrationError", "Registry", "ToolEntry"]


class RegistrationError(ValueError):
    """An object cannot be registered: it breaks the contract or its name is taken."""


@dataclass(frozen=True, slots=True)
class AgentEntry:
    agent: Agent
    plugin: str

    @property
    def name(self) -> str:
        return self.agent.name


@dataclass(frozen=True, slots=True)
class ProviderEntry:
    provider: Provider
    plugin: str

    @property
    def name(self) -> str:
        return self.provider.name


@dataclass(frozen=True, slots=True)
class ToolEntry:
    tool: Tool
    plugin: str

    @property
    def name(self) -> str:
        return self.tool.name


class Registry:
    """Agents, providers and tools by name; implements `api.Catalog`."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentEntry] = {}
        self._providers: dict[str, ProviderEntry] = {}
        self._tools: dict[str, ToolEntry] = {}

    # Catalog

    @property
    def agent_names(self) -> tuple[str, ...]:
        return tuple(sorted(self._agents))

    @property
    def provider_names(self) -> tuple[str, ...]:
        return tuple(sorted(self._providers))

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(sorted(self._tools))

    # Lookups

    def agent(self, name: str) -> Agent | None:
        entry = self._agents.get(name)
        return entry.agent if entry else None

    def provider(self, name: str) -> Provider | None:
        entry = self._providers.get(name)
        return entry.provider if entry else None

    def tool(self, name: str) -> Tool | None:
        entry = self._tools.get(name)
        return entry.tool if entry else None

    def agent_entry(self, name: str) -> AgentEntry | None:
        return self._agents.get(name)

    @property
    def agents(self) -> list[AgentEntry]:
        """Sorted by name."""
        return [self._agents[name] for name in sorted(self._agents)]

    @property
    def providers(self) -> list[ProviderEntry]:
        """Sorted by name."""
        return [self._providers[name] for name in sorted(self._providers)]

    @property
    def tools(self) -> list[ToolEntry]:
        """Sorted by name."""
        return [self._tools[name] for name in sorted(self._tools)]

    # Registration

    def add_agent(self, agent: object, plugin: str) -> AgentEntry:
        """Adds an agent or raises RegistrationError (the registry is then unchanged)."""
        _check_object(agent, Agent, "agent", _AGENT_MEMBERS, "run")
        assert isinstance(agent, Agent)  # narrowed by _check_object
        _check_schemas(agent)
        _check_free(self._agents, agent.name, "agent")
        entry = AgentEntry(agent, plugin)
        self._agents[agent.name] = entry
        return entry

    def add_provider(self, provider: object, plugin: str) -> ProviderEntry:
        """Adds a provider or raises RegistrationError (the registry is then unchanged)."""
        _check_object(provider, Provider, "provider", _PROVIDER_MEMBERS, "complete")
        assert isinstance(provider, Provider)
        models = provider.models
        if isinstance(models, str) or not all(isinstance(model, str) for model in models):
            raise RegistrationError(f"provider {provider.name!r}: models must be a list of str")
        _check_free(self._providers, provider.name, "provider")
        entry = ProviderEntry(provider, plugin)
        self._providers[provider.name] = entry
        return entry

    def add_tool(self, tool: object, plugin: str) -> ToolEntry:
        """Adds a tool or raises RegistrationError (the registry is then unchanged)."""
        if not isinstance(tool, Tool):
            raise RegistrationError(f"tool must be a podium.plugins.api.Tool, not {_kind(tool)}")
        _check_name(tool.name, "tool")
        if not _is_async_callable(tool.call):
            raise RegistrationError(f"tool {tool.name!r}: call must be an async function")
        problem = (
            schema_problem(tool.parameters)
            if isinstance(tool.parameters, Mapping)
            else (f"a mapping is required, not {_kind(tool.parameters)}")
        )
        if problem is not None:
            raise RegistrationError(
                f"tool {tool.name!r}: parameters is not a JSON Schema: {problem}"
            )
        _check_free(self._tools, tool.name, "tool")
        entry = ToolEntry(tool, plugin)
        self._tools[tool.name] = entry
        return entry

    def remove_plugin(self, plugin: str) -> None:
        """Forgets everything `plugin` registered (used when the plugin fails
        part-way, so it never half-works)."""
        for table in (self._agents, self._providers, self._tools):
            for name in [name for name, entry in table.items() if entry.plugin == plugin]:
                del table[name]


# Protocol members, spelled out because typing only lists them publicly from
# 3.12 on; the str ones are also type-checked, which isinstance() does not do.
_AGENT_MEMBERS = ("name", "description", "version", "run")
_PROVIDER_MEMBERS = ("name", "description", "models", "price", "complete")
_TEXT_MEMBERS = ("name", "description", "version")


def _check_object(
    obj: object, protocol: type, kind: str, members: tuple[str, ...], method: str
) -> None:
    missing = [name for name in members if not hasattr(obj, name)]
    if missing or not isinstance(obj, protocol):
        raise RegistrationError(f"{kind} {_kind(obj)} lacks {', '.join(missing)}")
    for attribute in members:
        if attribute in _TEXT_MEMBERS and not isinstance(getattr(obj, attribute), str):
            raise RegistrationError(f"{kind} {_kind(obj)}: {attribute} must be a str")
    name = getattr(obj, "name")  # noqa: B009 (obj is only known to have it at runtime)
    _check_name(name, kind)
    if not _is_async_callable(getattr(obj, method)):
        raise RegistrationError(f"{kind} {name!r}: {method} must be an async method")


def _check_schemas(agent: Agent) -> None:
    # A broken schema would fail every workflow naming the agent, later and
    # far from its cause: the plugin is blamed now instead.
    for kind in AGENT_SCHEMAS:
        schema = getattr(agent, kind, None)
        if schema is None:
            continue
        if not isinstance(schema, Mapping):
            raise RegistrationError(f"agent {agent.name!r}: {kind} must be a mapping")
        try:
            json_compatible(schema)
        except NotJsonCompatible as error:
            raise RegistrationError(f"agent {agent.name!r}: {kind} is not JSON: {error}") from None
        problem = schema_problem(schema)
        if problem is not None:
            raise RegistrationError(f"agent {agent.name!r}: {kind} is no JSON Schema: {problem}")


def _check_name(name: object, kind: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise RegistrationError(f"{kind} name must be a non-empty str, not {name!r}")


def _check_free(table: dict[str, Any], name: str, kind: str) -> None:
    existing = table.get(name)
    if existing is not None:
        raise RegistrationError(
            f"{kind} {name!r} is already registered by plugin {existing.plugin!r}"
        )


def _is_async_callable(function: Callable[..., Any] | object) -> bool:
    # An instance with `async def __call__` is as good as a coroutine function.
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004
    )


def _kind(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"
