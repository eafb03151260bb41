"""`podium serve` and `podium worker` are parsed by their own command's parser,
so that a server (or a worker) restarted by a supervisor does not import the
other commands' tables, formatting and client first; whatever that parser
refuses is parsed again by the whole one, so every answer is the whole
parser's."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from podium.cli.main import _parse, build_parser, main

# What only the other commands need: the table renderer, the YAML loader of
# definitions and the blocking client with its stubs.
HEAVY = ("rich", "yaml", "podium.client._sync_client", "podium.client.definitions")


def _modules_after_parsing(argv: list[str]) -> dict[str, bool]:
    script = (
        "import json, sys\n"
        "from podium.cli.main import _parse\n"
        f"args = _parse({argv!r})\n"
        f"print(json.dumps({{name: name in sys.modules for name in {list(HEAVY)!r}}}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    loaded: dict[str, bool] = json.loads(done.stdout)
    return loaded


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--db", "x.db", "--retention", "30d"],
        ["--address", "127.0.0.1:1", "worker", "--agent", "echo"],
    ],
)
def test_a_server_or_worker_command_line_loads_no_other_command(argv: list[str]) -> None:
    assert _modules_after_parsing(argv) == dict.fromkeys(HEAVY, False)


def test_any_other_command_is_parsed_by_the_whole_parser() -> None:
    # The whole parser imports every command module (the table renderer
    # with them); the client itself waits for the first call.
    loaded = _modules_after_parsing(["runs", "list"])
    assert loaded["rich"] and not loaded["podium.client._sync_client"]


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--db", "x.db", "--grace", "3", "--limit", "max_steps=10"],
        ["--address", "127.0.0.1:9", "serve", "--synchronous", "normal"],
        ["worker", "--agent", "echo", "--agent", "slow"],
        ["runs", "start", "serve", "--input", "{}"],  # a workflow called "serve"
        ["workflows", "get", "worker"],
    ],
)
def test_the_standalone_parse_equals_the_whole_parsers(argv: list[str]) -> None:
    expected = vars(build_parser().parse_args(argv))
    got = vars(_parse(argv))
    # Handlers are the same functions; compare them by name.
    assert {k: getattr(v, "__qualname__", v) for k, v in got.items()} == {
        k: getattr(v, "__qualname__", v) for k, v in expected.items()
    }


def test_a_usage_error_is_the_whole_parsers(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["serve", "--no-such-option"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        "error: unrecognized arguments: --no-such-option (see `podium --help`)"
    ]


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    # `serve` on the line must not narrow the top-level help to itself.
    assert main(["--help", "serve"]) == 0
    out = capsys.readouterr().out
    for command in ("serve", "worker", "runs", "workflows", "quotas", "tokens", "completion"):
        assert command in out
