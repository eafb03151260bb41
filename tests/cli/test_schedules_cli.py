"""`podium schedules …` against a real `podium serve`: create from flags (cron
in a zone, an interval, input from JSON and from a file, overlap, catch-up,
jitter, labels), list, get, pause, trigger, resume, delete, in tables and in
--json; and bad input: one line on stderr, a non-zero exit, no traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from podium.cli.main import main
from podium.client import Client
from podium.testing import ServerProcess, start_server_process

ECHO = {
    "workflow_id": "wf",
    "spec": {"steps": [{"id": "a", "agent": "echo", "input": {"n": "input.n"}}]},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server_process(tmp_path_factory.mktemp("schedules") / "podium.db")
    with Client(process.address) as client:
        client.apply_workflow(ECHO)
    yield process
    process.stop()


def run_cli(
    capsys: pytest.CaptureFixture[str], server: ServerProcess, *argv: str
) -> tuple[int, str, str]:
    code = main([*argv, "--address", server.address])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_create_list_get_pause_trigger_resume_delete(
    server: ServerProcess, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run_cli(
        capsys,
        server,
        "schedules",
        "create",
        "--workflow",
        "wf",
        "--cron",
        "0 9 * * 1-5",
        "--timezone",
        "America/New_York",
        "--input",
        '{"n": 5}',
        "--overlap",
        "buffer-one",
        "--catch-up",
        "10m",
        "--jitter",
        "30s",
        "--label",
        "team=ops",
        "--json",
    )
    assert code == 0, err
    made = json.loads(out)
    name = made["name"]
    assert name.startswith("schedules/")
    assert made["cron"] == "0 9 * * 1-5"
    assert made["time_zone"] == "America/New_York"
    assert made["input"] == {"n": 5}
    assert made["overlap_policy"] == "OVERLAP_POLICY_BUFFER_ONE"
    assert made["catch_up_window"] == "600s"
    assert made["jitter"] == "30s"
    assert made["labels"] == {"team": "ops"}

    (tmp_path / "input.yaml").write_text("n: 8\n")
    code, out, err = run_cli(
        capsys,
        server,
        "schedules",
        "create",
        "--workflow",
        "workflows/wf",
        "--every",
        "1h",
        "--input",
        f"@{tmp_path / 'input.yaml'}",
        "--overlap",
        "allow",
    )
    assert code == 0, err
    assert out.startswith("created schedules/")
    assert "every" in out and "next fire" in out
    hourly = out.split()[1].rstrip(":")

    code, out, err = run_cli(
        capsys, server, "schedules", "create", "--workflow", "wf", "--every", "1d", "-q"
    )
    assert code == 0, err
    quiet = out.strip()
    assert quiet.startswith("schedules/") and "\n" not in quiet
    assert main(["schedules", "delete", quiet, "--address", server.address]) == 0
    capsys.readouterr()

    code, out, err = run_cli(capsys, server, "schedules", "list", "--json")
    assert code == 0, err
    listed = {s["name"]: s for s in json.loads(out)["schedules"]}
    assert {name, hourly} <= set(listed)
    assert listed[hourly]["interval"] == "3600s"
    assert listed[hourly]["input"] == {"n": 8}
    code, out, err = run_cli(capsys, server, "schedules", "list")
    assert code == 0, err
    assert name in out and "buffer-one" in out and "America/New_York" in out

    code, out, err = run_cli(capsys, server, "schedules", "get", hourly)
    assert code == 0, err
    assert "every 1h00m" in out and "allow" in out and "active" in out

    code, out, err = run_cli(capsys, server, "schedules", "pause", hourly)
    assert code == 0, err
    assert out.strip() == f"{hourly}: paused"
    # A bare id works as well as the name.
    code, out, err = run_cli(
        capsys, server, "schedules", "trigger", hourly.removeprefix("schedules/"), "--json"
    )
    assert code == 0, err
    run = json.loads(out)["run"]
    code, out, err = run_cli(capsys, server, "runs", "list", "--schedule", hourly, "--json")
    assert code == 0, err
    runs = json.loads(out)["runs"]
    assert [r["name"] for r in runs] == [run]
    assert runs[0]["schedule"] == hourly and runs[0]["labels"]["podium-schedule"]
    code, out, err = run_cli(capsys, server, "runs", "get", run)
    assert code == 0, err
    assert f"schedule  {hourly} (nominal time" in " ".join(out.split("\n"))

    code, out, err = run_cli(capsys, server, "schedules", "resume", hourly, "--json")
    assert code == 0, err
    assert "paused" not in json.loads(out)
    code, out, err = run_cli(capsys, server, "schedules", "delete", hourly)
    assert code == 0, err
    assert out.strip() == f"deleted {hourly}"
    one_line_error(*run_cli(capsys, server, "schedules", "get", hourly), "NOT_FOUND")
    code, out, err = run_cli(capsys, server, "schedules", "delete", name, "--json")
    assert code == 0, err
    assert json.loads(out) == {}


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["create", "--workflow", "wf"], ["--cron", "--every", "required"]),
        (["create", "--workflow", "wf", "--cron", "* * * * *", "--every", "1m"], ["not allowed"]),
        (["create", "--workflow", "wf", "--cron", "61 * * * *"], ["INVALID_ARGUMENT", "cron"]),
        (
            ["create", "--workflow", "wf", "--cron", "* * * * *", "--timezone", "Mars/Base"],
            ["INVALID_ARGUMENT", "schedule.time_zone"],
        ),
        (["create", "--workflow", "wf", "--every", "0s"], ["INVALID_ARGUMENT", "interval"]),
        (["create", "--workflow", "wf", "--every", "soon"], ["--every", "expected an age"]),
        (
            ["create", "--workflow", "missing", "--every", "1m"],
            ["INVALID_ARGUMENT", "schedule.workflow"],
        ),
        (["create", "--workflow", "wf", "--every", "1m", "--overlap", "wild"], ["--overlap"]),
        (["create", "--workflow", "wf", "--every", "1m", "--input", "[1]"], ["JSON object"]),
        (["create", "--workflow", "wf", "--every", "1m", "--input", "@/nonexistent"], ["--input"]),
        (["create", "--workflow", "wf", "--every", "1m", "--jitter", "-5"], ["--jitter"]),
        (["get", "0" * 32], ["NOT_FOUND"]),
        (["pause", "runs/abc"], ["schedules/"]),
        (["trigger", "not-an-id"], ["INVALID_ARGUMENT"]),
        (["resume", ""], ["empty schedule name"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_bad_input_is_one_line(
    server: ServerProcess,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    needles: list[str],
) -> None:
    one_line_error(*run_cli(capsys, server, "schedules", *argv), *needles)


def test_unreachable_server_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["schedules", "list", "--address", "127.0.0.1:1"])
    captured = capsys.readouterr()
    one_line_error(code, captured.out, captured.err, "cannot reach")


@pytest.mark.parametrize("columns", ["80", "250"])
def test_list_never_cuts_a_cell_at_any_width(
    server: ServerProcess,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    columns: str,
) -> None:
    code, out, err = run_cli(
        capsys,
        server,
        "schedules",
        "create",
        "--workflow",
        "wf",
        "--cron",
        "30 6 * * *",
        "--timezone",
        "Pacific/Chatham",
        "-q",
    )
    assert code == 0, err
    name = out.strip()
    monkeypatch.setenv("COLUMNS", columns)
    code, out, err = run_cli(capsys, server, "schedules", "list")
    assert code == 0, err
    assert name in out and "Pacific/Chatham" in out
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) <= int(columns)
    # At 80 columns each schedule is a block of fields; wide, one table row each.
    assert ("timing" in out) == (columns == "80")
    assert main(["schedules", "delete", name, "--address", server.address]) == 0
