"""`podium runs rerun` against a real `podium serve`: one run (with --from-step),
a filter of runs, and the one-line errors (unknown step, no run nor filter)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from podium.cli.main import main
from podium.client import Client
from podium.testing import ServerProcess, start_server_process
from podium.v1 import run_pb2

R = run_pb2
FLOW = {
    "workflow_id": "flow",
    "spec": {
        "steps": [
            {"id": "first", "agent": "echo", "input": {"n": "input.n"}},
            {"id": "broken", "agent": "flaky", "dependsOn": ["first"]},
        ]
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server_process(tmp_path_factory.mktemp("rerun") / "podium.db")
    with Client(process.address) as client:
        client.apply_workflow(FLOW)
    yield process
    process.stop()


def ended(client: Client, name: str) -> run_pb2.Run:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = client.get_run(name)
        if run.state in (R.RUN_STATE_SUCCEEDED, R.RUN_STATE_FAILED):
            return run
        time.sleep(0.05)
    raise AssertionError(f"{name} did not end")


def test_rerun_one_run_and_a_filter(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    address = ["--address", server.address]
    with Client(server.address) as client:
        original = ended(client, client.start_run("flow", {"n": 1}).name)
        assert original.state == R.RUN_STATE_FAILED  # flaky fails its first attempt

        assert main(["runs", "rerun", original.name, "--from-step", "broken", *address]) == 0
        out = capsys.readouterr().out
        assert f"(re-run of {original.name})" in out
        new_name = out.split()[1]
        again = ended(client, new_name)
        assert again.rerun_of == original.name
        assert [len(s.attempts) for s in again.steps] == [0, 1]  # `first` reused

        assert main(["runs", "rerun", "--workflow", "flow", "--state", "failed", *address]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(lines) == 2  # the original and the re-run above, both failed
        assert {line.split()[-1].rstrip(")") for line in lines} == {original.name, new_name}


def test_rerun_errors_are_one_line(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    address = ["--address", server.address]
    with Client(server.address) as client:
        original = ended(client, client.start_run("flow", {"n": 2}).name)
    assert main(["runs", "rerun", original.name, "--from-step", "nope", *address]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "INVALID_ARGUMENT" in err and "nope" in err
    assert main(["runs", "rerun", *address]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "either RUN or a filter" in err
    assert main(["runs", "rerun", "runs/nope", *address]) != 0
    assert "NOT_FOUND" in capsys.readouterr().err


def test_rerun_with_a_request_id_starts_one_run(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    # A workflow of its own: the filter test above counts the failed runs of `flow`.
    address = ["--address", server.address]
    with Client(server.address) as client:
        client.apply_workflow({**FLOW, "workflow_id": "idempotent"})
        original = ended(client, client.start_run("idempotent", {"n": 3}).name)
        request = ["runs", "rerun", original.name, "--request-id", "once", *address]
        assert main(request) == 0
        first = capsys.readouterr().out.split()[1]
        assert main(request) == 0
        assert capsys.readouterr().out.split()[1] == first
        assert len(list(client.list_runs(workflow="idempotent"))) == 2
    assert main([*request, "--from-step", "first"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ALREADY_EXISTS" in err and "once" in err
