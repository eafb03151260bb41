"""The README stays true to the code: every plugin hook is documented there,
the examples it names exist, and its YAML and Python examples work; every
limit is in docs/limits.md."""

from __future__ import annotations

import inspect
import re
import sys
import types
from pathlib import Path

import pytest

from podium.core.limits import DEFAULTS, Limits
from podium.plugins import hookspecs

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def hook_names() -> list[str]:
    return [
        name
        for name in dir(hookspecs)
        if callable(getattr(hookspecs, name))
        and hasattr(getattr(hookspecs, name), f"{hookspecs.PROJECT_NAME}_spec")
    ]


def test_every_hook_is_documented_in_the_readme() -> None:
    names = hook_names()
    assert names, "no hookspecs found"
    for name in names:
        assert f"`{name}(register)`" in README, f"hook {name} is not documented in README.md"


def test_files_the_readme_names_exist() -> None:
    for path in set(re.findall(r"examples/[\w.-]+\.(?:yaml|json)", README)):
        assert (ROOT / path).is_file(), path


def test_readme_shows_the_two_commands() -> None:
    assert "make demo" in README
    assert "make test" in README


def test_the_execution_patterns_example_is_valid_proto_json() -> None:
    import yaml
    from google.protobuf import json_format

    from podium.v1 import workflow_pb2

    block = README.split("### Execution patterns")[1].split("```yaml")[1].split("```")[0]
    steps = yaml.safe_load(block)
    assert isinstance(steps, list) and steps
    for step in steps:
        if "wait" not in step and "approval" not in step:
            step.setdefault("agent", "echo")
    json_format.ParseDict({"steps": steps}, workflow_pb2.WorkflowSpec())


def test_the_governance_policy_example_is_valid() -> None:
    import yaml

    from podium.governance.policy import Policy

    block = README.split("### Governance")[1].split("```yaml")[1].split("```")[0]
    Policy.model_validate(yaml.safe_load(block))


def test_the_provider_settings_example_configures_the_installed_plugins() -> None:
    import yaml

    from podium.governance.policy import Policy
    from podium.plugins.manager import load_plugins

    block = README.split("### Real providers")[1].split("```yaml")[1].split("```")[0]
    policy = Policy.model_validate(yaml.safe_load(block))
    registry = load_plugins().registry
    for name, settings in policy.providers.items():
        provider = registry.provider(name)
        assert provider is not None, name
        configure = getattr(provider, "configure", None)
        assert callable(configure), name
        configure(settings)


def python_block(section: str) -> str:
    """The first Python example under a `## ` heading of the README."""
    text = README.split(f"## {section}\n")[1].split("\n## ")[0]
    return text.split("```python\n")[1].split("```")[0]


async def test_the_testing_a_plugin_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The plugin it tests is the one "Writing a plugin" shows, as my_agents.plugin.
    plugin = types.ModuleType("my_agents.plugin")
    exec(compile(python_block("Writing a plugin"), "README.md", "exec"), plugin.__dict__)
    package = types.ModuleType("my_agents")
    package.plugin = plugin  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "my_agents", package)
    monkeypatch.setitem(sys.modules, "my_agents.plugin", plugin)

    example: dict[str, object] = {}
    exec(compile(python_block("Testing a plugin"), "README.md", "exec"), example)
    tests = {name: test for name, test in example.items() if name.startswith("test_")}
    assert len(tests) == 2, sorted(tests)
    for name, test in tests.items():
        assert inspect.iscoroutinefunction(test), name
        if "tmp_path" in inspect.signature(test).parameters:
            own = tmp_path / name
            own.mkdir()
            await test(tmp_path=own)
        else:
            await test()


def test_every_limit_is_documented() -> None:
    limits_doc = (ROOT / "docs" / "limits.md").read_text()
    for name in Limits.names():
        assert f"`{name}`" in limits_doc, name
    for default in (f"{DEFAULTS.max_steps:,}", f"{DEFAULTS.max_calls_in_flight}"):
        assert default in limits_doc
