"""`podium plugin new NAME`: a plugin project that installs, registers an agent, is typed and
has its tests, so a plugin author starts from something that already works."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from podium.cli.context import Context
from podium.cli.parser import ArgumentParser, UsageError

__all__ = ["register", "render"]

# A distribution name that is also a usable module and agent name once `-` becomes `_`.
_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")


def register(commands: Any) -> None:
    plugin: ArgumentParser = commands.add_parser(
        "plugin", help="start a plugin project (agents, providers or tools of your own)"
    )
    sub = plugin.add_subparsers(dest="plugin_command", metavar="COMMAND", required=True)
    new = sub.add_parser(
        "new",
        help="write a plugin project with one agent, its tests and its packaging",
        description="Writes NAME/ (pyproject.toml, src/, tests/, README.md). Then: "
        "cd NAME && pip install -e . && pytest. Guide: docs/plugins.md.",
    )
    new.add_argument("name", metavar="NAME", help="distribution name, e.g. podium-greeter")
    new.add_argument(
        "--directory",
        type=Path,
        default=None,
        metavar="DIR",
        help="where to write the project (default: ./NAME); must not exist",
    )
    new.set_defaults(handler=new_plugin)


def new_plugin(args: argparse.Namespace, ctx: Context) -> int:
    name: str = args.name
    if not _NAME.match(name):
        raise UsageError(
            f"plugin name {name!r}: use lower-case letters, digits and single - or _ "
            "(e.g. podium-greeter)"
        )
    target: Path = args.directory or Path(name)
    if target.exists():
        raise UsageError(f"{target} already exists: choose another --directory")
    files = render(name)
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    module = _module(name)
    ctx.out.print(
        f"wrote {target}/ with the agent {_agent(name)!r} (module {module}).\n"
        f"next: cd {target} && pip install -e . && pytest; the server loads it once installed "
        f"where `podium serve` runs (check with `podium plugins`).",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def _module(name: str) -> str:
    return name.replace("-", "_")


def _agent(name: str) -> str:
    """The agent's name: the distribution name without a `podium-` prefix, with `_`."""
    return _module(name.removeprefix("podium-").removeprefix("podium_"))


def render(name: str) -> dict[str, str]:
    """The project's files by relative path."""
    module, agent = _module(name), _agent(name)
    values = {"name": name, "module": module, "agent": agent, "class": _class_name(agent)}
    return {path.format(**values): text.format(**values) for path, text in _FILES.items()}


def _class_name(agent: str) -> str:
    return "".join(part.capitalize() for part in agent.split("_")) + "Agent"


# The files, as str.format templates: `{{` and `}}` are literal braces.
_FILES = {
    "pyproject.toml": """[project]
name = "{name}"
version = "0.1.0"
description = "A Podium plugin: the {agent} agent."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["podium"]

[project.optional-dependencies]
test = ["pytest>=8", "pytest-asyncio>=0.23"]

# Podium finds plugins through this entry-point group.
[project.entry-points.podium]
{module} = "{module}.plugin"

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["src/{module}"]

[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
pythonpath = ["src"]

[tool.mypy]
strict = true
""",
    "README.md": """# {name}

A [Podium](https://pypi.org/project/podium/) plugin with one agent, `{agent}`.

```sh
pip install -e ".[test]"   # into the environment `podium serve` runs in
pytest                     # the agent alone, then in a workflow on a real server
podium plugins             # (against a running server) shows {module} loaded
```

A workflow step uses it by name:

```yaml
steps:
  - id: greet
    agent: {agent}
    input: {{name: input.name}}
    config: {{punctuation: "!"}}
```
""",
    "src/{module}/__init__.py": '''"""The {name} Podium plugin."""
''',
    "src/{module}/py.typed": "",
    "src/{module}/plugin.py": '''"""What Podium loads through the `podium` entry point `{module}`:
hooks that register objects. The objects do the work in their async methods."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from podium.plugins.api import Agent, AgentError, Catalog, ConfigProblem, StepContext
from podium.plugins.hookspecs import hookimpl


class {class}:
    """Greets `input.name`. Replace this with your agent's work."""

    name = "{agent}"
    description = "Greets input.name; config.punctuation ends the greeting."
    # Part of the result cache's key: change it when the output for the same input changes.
    version = "1"

    def check_config(
        self, config: Mapping[str, Any], catalog: Catalog
    ) -> Iterable[ConfigProblem]:
        """Called by CreateWorkflow, so a bad config is refused before any run starts."""
        for key in config:
            if key != "punctuation":
                yield key, "unknown setting (known: punctuation)"
        if not isinstance(config.get("punctuation", "!"), str):
            yield "punctuation", "must be a string"

    async def run(self, ctx: StepContext) -> dict[str, str]:
        name = ctx.input.get("name") if isinstance(ctx.input, Mapping) else None
        if not isinstance(name, str) or not name:
            # Not retryable: the same input fails the same way.
            raise AgentError(
                "input.name must be a non-empty string", code="{module}.NoName", retryable=False
            )
        ctx.report(0.5, f"greeting {{name}}")
        punctuation = str(ctx.config.get("punctuation", "!"))
        return {{"greeting": f"Hello, {{name}}{{punctuation}}"}}


@hookimpl
def register_agents(register: Callable[[Agent], None]) -> None:
    register({class}())
''',
    "tests/test_{module}.py": '''"""The agent alone with a fake context, then in a workflow on a
real Podium server (127.0.0.1, an ephemeral port, a SQLite file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium.plugins.api import AgentError
from podium.testing import (
    FakeStepContext,
    create_workflow,
    plain,
    plugins_with,
    run_to_end,
    serving,
    step_of,
)
from podium.v1 import run_pb2
from {module}.plugin import {class}


async def test_it_greets() -> None:
    ctx = FakeStepContext({{"name": "Ada"}}, config={{"punctuation": "?"}})
    assert await {class}().run(ctx) == {{"greeting": "Hello, Ada?"}}
    assert ctx.reports[0].message == "greeting Ada"


async def test_a_missing_name_fails_for_good() -> None:
    with pytest.raises(AgentError) as caught:
        await {class}().run(FakeStepContext({{}}))
    assert caught.value.code == "{module}.NoName"
    assert not caught.value.retryable


async def test_in_a_workflow(tmp_path: Path) -> None:
    spec = {{"steps": [{{"id": "greet", "agent": "{agent}", "input": {{"name": "input.name"}}}}]}}
    async with serving(str(tmp_path / "podium.db"), plugins=plugins_with([{class}()])) as (
        _,
        stubs,
    ):
        await create_workflow(stubs, "greeting", spec)
        run, _ = await run_to_end(stubs, "greeting", {{"name": "Ada"}})
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED
    assert plain(step_of(run, "greet").output) == {{"greeting": "Hello, Ada!"}}
''',
}
