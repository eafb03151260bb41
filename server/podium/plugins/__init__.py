"""Podium's plugin system: hooks, loading, and the registry of what plugins
provide. Plugin authors need `hookimpl` and the types in `podium.plugins.api`."""

from podium.plugins.hookspecs import hookimpl
from podium.plugins.manager import (
    PluginReport,
    PluginStatus,
    describe_installed_plugins,
    load_plugins,
)
from podium.plugins.registry import (
    AgentEntry,
    ProviderEntry,
    RegistrationError,
    Registry,
    ToolEntry,
)

__all__ = [
    "AgentEntry",
    "PluginReport",
    "PluginStatus",
    "ProviderEntry",
    "RegistrationError",
    "Registry",
    "ToolEntry",
    "describe_installed_plugins",
    "hookimpl",
    "load_plugins",
]
