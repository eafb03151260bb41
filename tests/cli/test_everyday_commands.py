"""The commands a newcomer reaches for first, against a real `podium serve`: --version,
suggestions for typos, completion scripts, status, agents, the server's plugins, priorities,
listing with a limit, and ResetBreaker naming the breakers that exist."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from podium.cli.main import main
from podium.client import Client
from podium.testing import ServerProcess, start_server_process

HELLO = {
    "workflow_id": "hello",
    "spec": {"steps": [{"id": "greet", "agent": "echo", "input": {"name": "input.name"}}]},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server_process(tmp_path_factory.mktemp("everyday") / "podium.db")
    with Client(process.address) as client:
        client.apply_workflow(HELLO)
    yield process
    process.stop()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_version_without_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "--version")
    assert code == 0 and err == ""
    assert out.startswith("podium 0.1.0")


def test_python_dash_m_podium_is_the_podium_command() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "podium", "--version"], capture_output=True, text=True, check=True
    )
    assert completed.stdout.startswith("podium 0.1.0")


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["rnus", "list"], "did you mean 'runs'?"),
        (["runs", "lsit"], "did you mean 'list'?"),
        (["workflow", "list"], "did you mean 'workflows'?"),
        (["breakers", "rest", "x"], "did you mean 'reset'?"),
    ],
)
def test_a_mistyped_command_gets_a_suggestion(
    capsys: pytest.CaptureFixture[str], argv: list[str], suggestion: str
) -> None:
    code, out, err = cli(capsys, *argv)
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("error: ") and suggestion in line


def test_a_typo_far_from_every_command_gets_the_list_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = cli(capsys, "xyzzy")
    assert code == 2 and "did you mean" not in err and "choose from" in err


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts_parse_and_know_the_commands(
    capsys: pytest.CaptureFixture[str], shell: str
) -> None:
    code, script, _ = cli(capsys, "completion", shell)
    assert code == 0
    for command in ("workflows", "runs", "breakers", "completion", "status", "agents"):
        assert command in script
    if shell == "bash":
        # The script loads in bash, and completing `podium ru` offers `runs`.
        probe = (
            script
            + '\nCOMP_WORDS=(podium ru); COMP_CWORD=1; _shtab_podium; echo "${COMPREPLY[@]}"\n'
        )
        completed = subprocess.run(["bash", "-c", probe], capture_output=True, text=True)
        assert completed.returncode == 0, completed.stderr
        assert "runs" in completed.stdout.split()


def test_status_agents_and_the_servers_plugins(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    address = ["--address", server.address]
    code, out, _ = cli(capsys, "status", *address)
    assert code == 0
    assert "version" in out and "active runs" in out and "failed plugins" in out
    assert "sqlite, reachable (ping " in out
    code, out, _ = cli(capsys, "--json", "status", *address)
    assert code == 0 and json.loads(out)["version"] == "0.1.0"
    database = json.loads(out)["database"]
    assert (database["backend"], database["reachable"], database["writable"]) == (
        "sqlite",
        True,
        True,
    )

    code, out, _ = cli(capsys, "agents", *address)
    assert code == 0
    assert "echo" in out and "in-process" in out and "llm" in out
    code, out, err = cli(capsys, "agents", "--schema", "nope", *address)
    assert code == 1 and "NOT_FOUND" in err and "echo" in err

    code, out, _ = cli(capsys, "--json", "plugins", *address)
    served = {plugin["name"]: plugin for plugin in json.loads(out)}
    assert served["builtin"]["status"] == "loaded"
    assert "echo" in served["builtin"]["agents"]
    code, out, _ = cli(capsys, "--json", "plugins", "--local")
    assert code == 0 and "builtin" in {plugin["name"] for plugin in json.loads(out)}


def test_priority_from_the_cli_and_the_client(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    address = ["--address", server.address]
    code, out, _ = cli(
        capsys,
        "--json",
        "runs",
        "start",
        "hello",
        "--priority",
        "7",
        "--input",
        '{"name": "Ada"}',
        *address,
    )
    assert code == 0 and json.loads(out)["priority"] == 7
    with Client(server.address) as client:
        run = client.start_run("hello", {"name": "Bo"}, priority=-3)
        assert client.get_run(run.name).priority == -3


def test_runs_list_shows_the_newest_up_to_a_limit(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    address = ["--address", server.address]
    with Client(server.address) as client:
        names = [client.start_run("hello", {"name": str(i)}).name for i in range(4)]
    code, out, _ = cli(
        capsys, "--json", "runs", "list", "--limit", "3", "--page-size", "2", *address
    )
    assert code == 0
    listed = [run["name"] for run in json.loads(out)["runs"]]
    assert listed == names[::-1][:3]
    code, out, _ = cli(capsys, "runs", "list", "--limit", "2", *address)
    assert "the newest 2" in out
    code, _, err = cli(capsys, "runs", "list", "--limit", "-1", *address)
    assert code == 2 and "expected 0 or more" in err


def test_resetting_an_unknown_breaker_names_the_rule(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "breakers", "reset", "provider:nope", "--address", server.address)
    assert code == 1
    assert "NOT_FOUND" in err and "'provider:nope' not found" in err and "provider:NAME" in err
    # The message names what does exist (the configured providers' breakers at least).
    assert "provider:simulated" in err or "there are none yet" in err
