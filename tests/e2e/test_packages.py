"""The four distributions as a newcomer gets them: built as wheels, installed into a fresh
virtual environment outside the workspace, then used: the CLI, the shipped examples on a real
`podium serve`, a plugin made by `podium plugin new` (its own tests and `mypy --strict` pass,
and the server runs its agent), and the packages' metadata (licence, long description)."""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from podium.testing import start_server_process

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".tools" / "bin" / "uv"
DISTRIBUTIONS = ("podium", "podium_client", "podium_openai", "podium_anthropic")
TIMEOUT = 600


def run(argv: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> str:
    completed = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"{argv} exited {completed.returncode}:\n{output[-4000:]}"
    return completed.stdout


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("outside")


@pytest.fixture(scope="module")
def wheels(outside: Path) -> list[Path]:
    uv = shutil.which("uv") or str(UV)
    out = outside / "wheels"
    run([uv, "build", "--all-packages", "--wheel", "--out-dir", out], cwd=ROOT)
    built = sorted(out.glob("*.whl"))
    assert {w.name.split("-")[0] for w in built} == set(DISTRIBUTIONS)
    return built


@pytest.fixture(scope="module")
def venv(outside: Path, wheels: list[Path]) -> Iterator[Path]:
    """A virtual environment in a temporary directory, with the four wheels, the template
    plugin's test tools and mypy, and nothing from the workspace."""
    uv = shutil.which("uv") or str(UV)
    env_dir = outside / "venv"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_"))}
    run([uv, "venv", "--python", sys.executable, env_dir], cwd=outside, env=clean)
    python = env_dir / "bin" / "python"
    run(
        [uv, "pip", "install", "--python", python, *wheels, "pytest", "pytest-asyncio", "mypy"],
        cwd=outside,
        env=clean,
    )
    yield env_dir


def test_every_wheel_carries_its_licence_and_long_description(wheels: list[Path]) -> None:
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
            metadata = email.message_from_bytes(archive.read(metadata_name))
            assert metadata["License-Expression"] == "Apache-2.0", wheel.name
            assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), wheel.name
            assert len(metadata.get_payload()) > 200, f"{wheel.name}: no long description"
            # Typed: py.typed in every package, so plugin authors' mypy sees the annotations.
            packages = {n.rsplit("/", 1)[0] for n in names if n.endswith("/__init__.py")}
            for package in packages:
                if package.count("/") == (1 if package.startswith("podium/") else 0):
                    assert f"{package}/py.typed" in names, f"{wheel.name}: {package}"


def test_the_cli_and_the_examples_from_the_installed_wheels(venv: Path, outside: Path) -> None:
    bin_dir = venv / "bin"
    version = run([bin_dir / "podium", "--version"], cwd=outside)
    assert version.startswith("podium 0.1.0")
    assert run([bin_dir / "python", "-m", "podium", "--version"], cwd=outside) == version
    examples = venv / "share" / "podium" / "examples"
    assert (examples / "hello.yaml").is_file() and (examples / "erp.yaml").is_file()


def test_a_plugin_from_the_template_is_typed_tested_and_served(venv: Path, outside: Path) -> None:
    uv = shutil.which("uv") or str(UV)
    bin_dir = venv / "bin"
    project = outside / "greeter"
    run([bin_dir / "podium", "plugin", "new", "podium-greeter", "--directory", project], outside)
    # Its own checks, as its author would run them.
    run([bin_dir / "mypy", "--strict", "src", "tests"], cwd=project)
    run([bin_dir / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_"))}
    run([uv, "pip", "install", "--python", bin_dir / "python", project], outside, env=clean)

    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "200"}
    server = start_server_process(
        outside / "podium.db", env=env, cwd=outside, cli=[str(bin_dir / "podium")]
    )
    try:
        address = ["--address", server.address]
        plugins = run([bin_dir / "podium", "plugins", *address], outside, env)
        assert "podium_greeter" in plugins and "loaded" in plugins and "failed" not in plugins
        examples = venv / "share" / "podium" / "examples"
        run(
            [bin_dir / "podium", "workflows", "apply", "-f", examples / "hello.yaml", *address],
            outside,
            env,
        )
        hello = run(
            [
                bin_dir / "podium",
                "runs",
                "start",
                "hello",
                "--input",
                '{"name": "Ada"}',
                "--watch",
                *address,
            ],
            outside,
            env,
        )
        assert "HELLO, ADA!" in hello
        definition = outside / "greeting.yaml"
        definition.write_text(
            "workflow_id: greeting\n"
            "spec:\n"
            "  steps:\n"
            "    - {id: greet, agent: greeter, input: {name: input.name},"
            " config: {punctuation: '?'}}\n"
            "  output: {greeting: steps.greet.output.greeting}\n"
        )
        run([bin_dir / "podium", "workflows", "apply", "-f", definition, *address], outside, env)
        greeted = run(
            [
                bin_dir / "podium",
                "runs",
                "start",
                "greeting",
                "--input",
                '{"name": "Ada"}',
                "--watch",
                *address,
            ],
            outside,
            env,
        )
        assert "Hello, Ada?" in greeted
    finally:
        server.stop()
