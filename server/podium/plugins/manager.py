"""Loading plugins: the builtin one, then every `podium` entry point, each
in isolation so that one broken plugin is reported and never takes the
others (or the server) down."""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import pluggy

from podium.plugins import hookspecs
from podium.plugins.registry import RegistrationError, Registry

__all__ = [
    "BUILTIN_PLUGIN",
    "ENTRY_POINT_GROUP",
    "PluginReport",
    "PluginStatus",
    "describe_installed_plugins",
    "load_plugins",
]

ENTRY_POINT_GROUP = "podium"
BUILTIN_PLUGIN = "builtin"
ALLOW_ENV = "PODIUM_PLUGINS"
DENY_ENV = "PODIUM_DISABLE_PLUGINS"

# Hook name -> Registry method that adds one object of that kind.
_HOOKS = (
    ("register_agents", "add_agent"),
    ("register_providers", "add_provider"),
    ("register_tools", "add_tool"),
)

log = logging.getLogger("podium.plugins")

Status = Literal["loaded", "failed", "disabled"]


@dataclass(frozen=True, slots=True)
class PluginStatus:
    name: str
    distribution: str
    version: str
    status: Status
    error: str = ""
    agents: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "agents": list(self.agents),
            "providers": list(self.providers),
            "tools": list(self.tools),
        }


@dataclass(slots=True)
class PluginReport:
    registry: Registry
    plugins: list[PluginStatus] = field(default_factory=list)

    @property
    def failed(self) -> list[PluginStatus]:
        return [plugin for plugin in self.plugins if plugin.status == "failed"]

    def plugin(self, name: str) -> PluginStatus | None:
        return next((plugin for plugin in self.plugins if plugin.name == name), None)


def load_plugins(
    *,
    include_entry_points: bool = True,
    allow: set[str] | None = None,
    deny: set[str] | None = None,
    entry_points: Iterable[importlib.metadata.EntryPoint] | None = None,
    agents: bool = True,
) -> PluginReport:
    """Loads the builtin plugin and the installed ones into a new Registry.

    `allow` names the entry points to load (None: all; the builtin plugin is
    always allowed); `deny` names plugins not to load, the builtin one
    included. They default to the comma-separated PODIUM_PLUGINS and
    PODIUM_DISABLE_PLUGINS. `entry_points` replaces discovery (for tests).
    With `agents=False` no plugin registers an agent (its register_agents
    hook is not called): agents then run on workers only.
    Never raises because of a plugin: failures are in the report's statuses.
    """
    if allow is None:
        allow = _names_from_env(ALLOW_ENV) or None
    if deny is None:
        deny = _names_from_env(DENY_ENV)
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    report = PluginReport(Registry())

    builtin = _Candidate(BUILTIN_PLUGIN, "podium", _podium_version(), _load_builtin)
    candidates = [builtin]
    if include_entry_points:
        found = _discover() if entry_points is None else list(entry_points)
        candidates += [_entry_point_candidate(entry_point) for entry_point in found]

    for candidate in candidates:
        is_builtin = candidate is builtin
        if candidate.name in deny or not (is_builtin or allow is None or candidate.name in allow):
            report.plugins.append(candidate.status("disabled"))
            log.info("plugin %r is disabled", candidate.name)
            continue
        report.plugins.append(_load_one(pm, report.registry, candidate, agents=agents))
    return report


def describe_installed_plugins() -> list[dict[str, Any]]:
    """What `podium plugins` prints: one dict per plugin (name, distribution,
    version, status, error, agents, providers, tools)."""
    return [plugin.to_dict() for plugin in load_plugins().plugins]


@dataclass(frozen=True, slots=True)
class _Candidate:
    name: str
    distribution: str
    version: str
    load: Callable[[], object]

    def status(self, status: Status, error: str = "", **names: tuple[str, ...]) -> PluginStatus:
        return PluginStatus(self.name, self.distribution, self.version, status, error, **names)


def _load_one(
    pm: pluggy.PluginManager, registry: Registry, candidate: _Candidate, *, agents: bool = True
) -> PluginStatus:
    try:
        plugin = candidate.load()
        pm.register(plugin, name=candidate.name)
    # A plugin's import may raise anything, even SystemExit from a stray
    # sys.exit() or a KeyboardInterrupt: the plugin failed, the server serves.
    except BaseException as error:
        return _failed(candidate, _describe(error))
    problem = _check_hooks(pm, plugin)
    if problem is None:
        hooks = _HOOKS if agents else tuple(h for h in _HOOKS if h[0] != "register_agents")
        problem = _run_hooks(pm, registry, candidate.name, plugin, hooks)
    if problem is not None:
        # Neither half-registered objects nor hooks of a failed plugin stay around.
        registry.remove_plugin(candidate.name)
        pm.unregister(plugin)
        return _failed(candidate, problem)
    return candidate.status(
        "loaded",
        agents=tuple(e.name for e in registry.agents if e.plugin == candidate.name),
        providers=tuple(e.name for e in registry.providers if e.plugin == candidate.name),
        tools=tuple(e.name for e in registry.tools if e.plugin == candidate.name),
    )


def _check_hooks(pm: pluggy.PluginManager, plugin: object) -> str | None:
    for caller in pm.get_hookcallers(plugin) or []:
        mine = [impl for impl in caller.get_hookimpls() if impl.plugin is plugin]
        if caller.spec is None and not all(impl.optionalhook for impl in mine):
            # Most likely a typo (register_agent); silently ignoring it would
            # leave the author wondering why nothing is registered.
            return f"unknown hook {caller.name!r}"
        for impl in mine:
            if impl.hookwrapper or impl.wrapper:
                return f"hook {caller.name!r}: wrappers are not supported"
            if inspect.iscoroutinefunction(impl.function):
                return f"hook {caller.name!r} must be synchronous (it only registers objects)"
    return None


def _run_hooks(
    pm: pluggy.PluginManager,
    registry: Registry,
    name: str,
    plugin: object,
    hooks: tuple[tuple[str, str], ...] = _HOOKS,
) -> str | None:
    # Each implementation is called on its own, rather than through pm.hook,
    # so that a raising hook fails only its plugin and each registration is
    # attributed to the plugin that made it.
    problems: list[str] = []
    for hook_name, method in hooks:
        add: Callable[[object, str], object] = getattr(registry, method)

        def register(obj: object, add: Callable[[object, str], object] = add) -> None:
            # Problems are collected, not raised: a raise would land in the
            # plugin's own code, which might swallow it.
            try:
                add(obj, name)
            except RegistrationError as error:
                problems.append(str(error))

        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.plugin is not plugin:
                continue
            try:
                impl.function(register=register)
            except BaseException as error:
                return f"{hook_name}: {_describe(error)}"
    return "; ".join(problems) if problems else None


def _failed(candidate: _Candidate, error: str) -> PluginStatus:
    log.warning("plugin %r failed to load: %s", candidate.name, error)
    return candidate.status("failed", error)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _load_builtin() -> object:
    from podium.plugins import builtin

    return builtin


def _discover() -> list[importlib.metadata.EntryPoint]:
    # Sorted, because the first plugin to claim a name keeps it: which one
    # must not depend on directory listing order.
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return sorted(found, key=lambda entry_point: entry_point.name)


def _entry_point_candidate(entry_point: importlib.metadata.EntryPoint) -> _Candidate:
    dist = entry_point.dist
    distribution = dist.name if dist is not None else ""
    version = dist.version if dist is not None else ""
    return _Candidate(entry_point.name, distribution, version, entry_point.load)


def _podium_version() -> str:
    try:
        return importlib.metadata.version("podium")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _names_from_env(variable: str) -> set[str]:
    return {name.strip() for name in os.environ.get(variable, "").split(",") if name.strip()}
