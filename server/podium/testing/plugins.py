"""The plugins a test server runs: the builtin plugin and the test's own
agents, providers and tools, registered as a plugin's hooks would."""

from __future__ import annotations

from collections.abc import Iterable

from podium.plugins.api import Agent, Provider, Tool
from podium.plugins.manager import PluginReport, load_plugins

__all__ = ["plugins_with"]


def plugins_with(
    agents: Iterable[Agent] = (),
    *,
    providers: Iterable[Provider] = (),
    tools: Iterable[Tool] = (),
    installed: bool = False,
    plugin: str = "tests",
) -> PluginReport:
    """A plugin report for `serving(plugins=...)`: the builtin plugin, the
    installed ones too if `installed` (as `podium serve` loads them), plus
    these objects, listed as registered by `plugin`."""
    report = load_plugins(include_entry_points=installed)
    for agent in agents:
        report.registry.add_agent(agent, plugin=plugin)
    for provider in providers:
        report.registry.add_provider(provider, plugin=plugin)
    for tool in tools:
        report.registry.add_tool(tool, plugin=plugin)
    return report
