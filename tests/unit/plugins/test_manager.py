"""Plugin loading from real installed distributions: a dist-info directory
with an entry_points.txt on sys.path is exactly what `pip install` leaves."""

from __future__ import annotations

import inspect
import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import podium.plugins
from podium.plugins import hookspecs, load_plugins
from podium.plugins.manager import describe_installed_plugins

GOOD = """
from podium.plugins import hookimpl


class ShoutAgent:
    name = "shout"
    description = "Upper-cases its input."
    version = "2"

    async def run(self, ctx):
        return str(ctx.input).upper()


@hookimpl
def register_agents(register):
    register(ShoutAgent())
"""

BROKEN = """
raise ImportError("needs a library that is not installed")
"""

RAISING = """
from podium.plugins import hookimpl


class WhisperAgent:
    name = "whisper"
    description = "Lower-cases its input."
    version = "1"

    async def run(self, ctx):
        return str(ctx.input).lower()


@hookimpl
def register_agents(register):
    register(WhisperAgent())


@hookimpl
def register_providers(register):
    raise RuntimeError("no API key")
"""

SQUATTER = """
from podium.plugins import hookimpl


class FakeEcho:
    name = "echo"
    description = "Tries to take over the builtin echo."
    version = "1"

    async def run(self, ctx):
        return None


@hookimpl
def register_agents(register):
    register(FakeEcho())
"""

SYNC_AGENT = """
from podium.plugins import hookimpl


class SyncAgent:
    name = "sync"
    description = "Forgot async."
    version = "1"

    def run(self, ctx):
        return None


@hookimpl
def register_agents(register):
    register(SyncAgent())
"""

TYPO = """
from podium.plugins import hookimpl


@hookimpl
def register_agent(register):
    pass
"""

INTERRUPTING = """
raise KeyboardInterrupt
"""

EXITING_HOOK = """
from podium.plugins import hookimpl


@hookimpl
def register_agents(register):
    raise SystemExit(2)
"""

PLUGINS = {
    "good": GOOD,
    "interrupting": INTERRUPTING,
    "exiting_hook": EXITING_HOOK,
    "broken": BROKEN,
    "raising": RAISING,
    "squatter": SQUATTER,
    "sync": SYNC_AGENT,
    "typo": TYPO,
}


def install(site: Path, plugin: str, source: str) -> None:
    """Installs a one-module distribution `podium-test-<plugin>` 1.0 into `site`."""
    module = f"podium_test_{plugin}"
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    dist_info = site / f"podium_test_{plugin}-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: podium-test-{plugin}\nVersion: 1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(f"[podium]\ntest_{plugin} = {module}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for plugin, source in PLUGINS.items():
        install(tmp_path, plugin, source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("PODIUM_PLUGINS", raising=False)
    monkeypatch.delenv("PODIUM_DISABLE_PLUGINS", raising=False)
    yield tmp_path
    for plugin in PLUGINS:
        sys.modules.pop(f"podium_test_{plugin}", None)


def test_an_installed_plugin_is_discovered_and_its_agent_attributed(site: Path) -> None:
    report = load_plugins()
    status = report.plugin("test_good")
    assert status is not None
    assert (status.status, status.distribution, status.version) == (
        "loaded",
        "podium-test-good",
        "1.0",
    )
    assert status.agents == ("shout",)
    entry = report.registry.agent_entry("shout")
    assert entry is not None and entry.plugin == "test_good"
    assert "shout" in report.registry.agent_names


async def test_a_discovered_agent_runs(site: Path) -> None:
    agent = load_plugins().registry.agent("shout")
    assert agent is not None

    class Ctx:
        input = "hey"

    assert await agent.run(Ctx()) == "HEY"  # type: ignore[arg-type]


def test_broken_plugins_are_listed_as_failed_and_the_others_load(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="podium.plugins"):
        report = load_plugins()
    statuses = {plugin.name: plugin for plugin in report.plugins}

    assert statuses["builtin"].status == "loaded"
    assert statuses["test_good"].status == "loaded"

    broken = statuses["test_broken"]
    assert broken.status == "failed"
    assert broken.error == "ImportError: needs a library that is not installed"
    assert (broken.distribution, broken.version) == ("podium-test-broken", "1.0")

    raising = statuses["test_raising"]
    assert raising.status == "failed"
    assert raising.error == "register_providers: RuntimeError: no API key"
    # It registered an agent before its other hook raised: that does not stay.
    assert report.registry.agent("whisper") is None
    assert raising.agents == ()

    assert "test_broken" in caplog.text and "test_raising" in caplog.text


def test_a_plugin_raising_keyboard_interrupt_or_system_exit_fails_alone(site: Path) -> None:
    # Neither may end the server's start-up: the plugin failed, the rest loads.
    report = load_plugins()
    statuses = {plugin.name: plugin for plugin in report.plugins}
    assert statuses["test_interrupting"].status == "failed"
    assert statuses["test_interrupting"].error.startswith("KeyboardInterrupt")
    assert statuses["test_exiting_hook"].status == "failed"
    assert statuses["test_exiting_hook"].error == "register_agents: SystemExit: 2"
    assert statuses["test_good"].status == "loaded"


def test_a_name_taken_by_an_earlier_plugin_fails_the_later_one(site: Path) -> None:
    report = load_plugins()
    squatter = report.plugin("test_squatter")
    assert squatter is not None and squatter.status == "failed"
    assert "'echo' is already registered by plugin 'builtin'" in squatter.error
    entry = report.registry.agent_entry("echo")
    assert entry is not None and entry.plugin == "builtin"


def test_objects_breaking_the_contract_and_unknown_hooks_fail_their_plugin(site: Path) -> None:
    report = load_plugins()
    sync, typo = report.plugin("test_sync"), report.plugin("test_typo")
    assert sync is not None and sync.status == "failed"
    assert "run must be an async method" in sync.error
    assert report.registry.agent("sync") is None
    assert typo is not None and typo.status == "failed"
    assert "unknown hook 'register_agent'" in typo.error


def test_podium_plugins_allows_only_the_named_entry_points(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODIUM_PLUGINS", "test_good, test_raising")
    statuses = {plugin.name: plugin.status for plugin in load_plugins().plugins}
    assert statuses["builtin"] == "loaded"
    assert statuses["test_good"] == "loaded"
    assert statuses["test_raising"] == "failed"
    assert statuses["test_broken"] == "disabled"
    assert statuses["test_squatter"] == "disabled"
    # A disabled plugin is not even imported.
    assert "podium_test_squatter" not in sys.modules


def test_podium_disable_plugins_blocks_any_plugin_builtin_included(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODIUM_DISABLE_PLUGINS", "builtin,test_good")
    report = load_plugins()
    statuses = {plugin.name: plugin.status for plugin in report.plugins}
    assert statuses["builtin"] == "disabled"
    assert statuses["test_good"] == "disabled"
    assert statuses["test_raising"] == "failed"
    assert report.registry.agent("shout") is None
    # With the builtin echo gone, the squatter gets the name.
    entry = report.registry.agent_entry("echo")
    assert entry is not None and entry.plugin == "test_squatter"


def test_explicit_allow_and_deny_override_the_environment(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODIUM_DISABLE_PLUGINS", "test_good")
    report = load_plugins(allow={"test_good"}, deny=set())
    statuses = {plugin.name: plugin.status for plugin in report.plugins}
    assert statuses["test_good"] == "loaded"
    assert statuses["test_broken"] == "disabled"


def test_entry_points_can_be_injected_or_skipped(site: Path) -> None:
    from importlib.metadata import EntryPoint

    good = EntryPoint(name="injected", value="podium_test_good", group="podium")
    report = load_plugins(entry_points=[good])
    assert [plugin.name for plugin in report.plugins] == ["builtin", "injected"]
    assert report.plugin("injected") is not None
    assert report.registry.agent_entry("shout") is not None
    only_builtin = load_plugins(include_entry_points=False)
    assert [plugin.name for plugin in only_builtin.plugins] == ["builtin"]


def test_describe_installed_plugins_lists_versions_and_failures(site: Path) -> None:
    described = {plugin["name"]: plugin for plugin in describe_installed_plugins()}
    assert described["builtin"]["distribution"] == "podium"
    assert described["builtin"]["version"]
    assert described["builtin"]["providers"] == ["simulated"]
    assert "echo" in described["builtin"]["agents"]
    assert described["test_good"] == {
        "name": "test_good",
        "distribution": "podium-test-good",
        "version": "1.0",
        "status": "loaded",
        "error": "",
        "agents": ["shout"],
        "providers": [],
        "tools": [],
    }
    assert described["test_broken"]["status"] == "failed"


def test_every_hook_is_documented() -> None:
    specs = [
        function
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, f"{hookspecs.PROJECT_NAME}_spec")
    ]
    assert {spec.__name__ for spec in specs} == {
        "register_agents",
        "register_providers",
        "register_tools",
    }
    for spec in specs:
        assert spec.__doc__ and len(spec.__doc__.strip()) > 40, spec.__name__


def test_public_surface_is_pinned() -> None:
    assert podium.plugins.__all__ == [
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
    assert podium.plugins.hookimpl is hookspecs.hookimpl


def test_registry_checks_objects_and_names_when_used_directly() -> None:
    from podium.plugins import RegistrationError, Registry
    from podium.plugins.api import Tool
    from podium.plugins.builtin import EchoAgent, SimulatedProvider

    registry = Registry()
    registry.add_agent(EchoAgent(), "mine")
    registry.add_provider(SimulatedProvider(), "mine")
    with pytest.raises(RegistrationError, match="already registered by plugin 'mine'"):
        registry.add_agent(EchoAgent(), "theirs")
    with pytest.raises(RegistrationError, match="lacks"):
        registry.add_agent(object(), "theirs")
    with pytest.raises(RegistrationError, match="must be an async"):
        registry.add_tool(Tool("t", "d", {}, lambda arguments: None), "theirs")  # type: ignore[arg-type,return-value]

    async def call(arguments: object) -> None:
        return None

    # A tool's parameters must be a JSON Schema: its arguments are checked against it.
    with pytest.raises(RegistrationError, match="parameters is not a JSON Schema"):
        registry.add_tool(Tool("t", "d", {"type": "no-such-type"}, call), "theirs")
    with pytest.raises(RegistrationError, match="parameters is not a JSON Schema"):
        registry.add_tool(Tool("t", "d", ["not", "a", "mapping"], call), "theirs")  # type: ignore[arg-type]
    assert registry.agent_names == ("echo",)
    assert registry.provider_names == ("simulated",)
    assert registry.tool_names == ()
    registry.remove_plugin("mine")
    assert registry.agent("echo") is None and registry.provider("simulated") is None
