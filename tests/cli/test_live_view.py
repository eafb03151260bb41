"""The live view (`runs start --watch` on a terminal) and the event lines, against a real
`podium serve`: fan-out item counts and elapsed time, a summary printed once, a readable
table at 80 columns, stale messages cleared, failures printed once, JSON lines."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import timestamp_pb2
from rich.console import Console

from podium.cli.context import Context
from podium.cli.main import main
from podium.cli.progress import RunProgress, StepProgress
from podium.cli.watch import event_line, follow_run
from podium.client import Client
from podium.testing import ServerProcess, start_server_process
from podium.v1 import common_pb2, event_pb2, run_pb2

E, R = event_pb2, run_pb2

FAN_OUT = {
    "workflow_id": "fan",
    "spec": {
        "steps": [
            {
                "id": "each_customer",
                "agent": "echo",
                "for_each": {"items": "input.customers", "max_concurrency": 2},
                "input": {"customer": "item"},
                "config": {"delay_ms": 20},
            },
            {
                "id": "a_step_with_a_rather_long_name",
                "agent": "echo",
                "depends_on": ["each_customer"],
                "input": {"n": "steps.each_customer.output.size()"},
            },
        ]
    },
}
FAILING = {
    "workflow_id": "failing",
    "spec": {
        "steps": [
            {"id": "boom", "agent": "flaky", "config": {"error": "NoWay", "retryable": False}},
        ]
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("live")
    process = start_server_process(directory / "podium.db")
    with Client(process.address) as client:
        client.apply_workflow(FAN_OUT)
    yield process
    process.stop()


def terminal_context(address: str, width: int) -> tuple[Context, io.StringIO]:
    buffer = io.StringIO()
    console = Console(
        file=buffer, width=width, force_terminal=True, color_system=None, legacy_windows=False
    )
    args = argparse.Namespace(address=address, json=False)
    return Context(args, out=console), buffer


def test_a_fan_out_on_an_80_column_terminal(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    with Client(server.address) as client:
        run = client.start_run("fan", {"customers": ["a", "b", "c", "d", "e"]})
    ctx, buffer = terminal_context(server.address, 80)
    try:
        assert follow_run(ctx, run.name) == 0
    finally:
        ctx.close()
    screen = buffer.getvalue()
    # The last frame the live view left on the screen.
    last = screen.rsplit("STEP", 1)[1]
    lines = last.splitlines()
    assert all(len(line) <= 80 for line in lines), last
    fan_row = next(line for line in lines if "each_custom" in line)
    assert "SUCCEEDED" in fan_row and "SUCCEED…" not in fan_row
    assert "5/5 items" in fan_row
    # Elapsed time counted from the first item (a fan-out has no STEP_STARTED).
    assert " - " not in fan_row.split("items", 1)[1][:12]
    # The state, time and spend line appears once: in the last frame, not again after it.
    run_id = run.name.removeprefix("runs/")
    assert screen.count(f"run {run_id}  SUCCEEDED") == 1, screen[-2000:]
    assert f"run {run.name} SUCCEEDED in" not in screen
    assert "spend:" not in screen
    # The run's output follows the last frame (as plain JSON, on stdout).
    assert capsys.readouterr().out.startswith("output:")


def test_line_mode_prints_a_failure_once_and_json_lines_are_proto_json(
    server: ServerProcess, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    definition = tmp_path / "failing.json"
    definition.write_text(json.dumps(FAILING))
    address = ["--address", server.address]
    assert main(["workflows", "apply", "-f", str(definition), *address]) == 0
    capsys.readouterr()
    assert main(["runs", "start", "failing", "--watch", *address]) == 1
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if "STEP_FAILED" in line]
    assert len(failed) == 1 and failed[0].count("NoWay") == 1, out

    assert (
        main(
            [
                "--json",
                "runs",
                "start",
                "fan",
                "--watch",
                "--input",
                '{"customers": ["x"]}',
                *address,
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    events = [json.loads(line) for line in lines]
    # int64 fields are strings in the proto JSON mapping.
    assert [int(e["sequence"]) for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "RUN_EVENT_TYPE_RUN_CREATED"
    assert events[-1]["type"] == "RUN_EVENT_TYPE_RUN_SUCCEEDED"


def _event(seq: int, type_: int, **fields: object) -> event_pb2.RunEvent:
    return event_pb2.RunEvent(
        run="runs/abc",
        sequence=seq,
        time=timestamp_pb2.Timestamp(seconds=1_750_000_000 + seq),
        type=type_,  # type: ignore[arg-type]
        run_state=R.RUN_STATE_RUNNING,
        **fields,  # type: ignore[arg-type]
    )


def test_a_resumed_after_message_does_not_outlive_the_step() -> None:
    run = run_pb2.Run(name="runs/abc", steps=[run_pb2.StepRun(step_id="ask", agent="llm")])
    progress = RunProgress(run)
    progress.apply(_event(1, E.RUN_EVENT_TYPE_STEP_STARTED, step_id="ask", attempt=1))
    progress.apply(_event(2, E.RUN_EVENT_TYPE_STEP_WAITING, step_id="ask", message="quota:sim-rpm"))
    progress.apply(
        _event(3, E.RUN_EVENT_TYPE_STEP_PROGRESS, step_id="ask", message="resumed after quota")
    )
    assert progress.steps["ask"].message == "resumed after quota"
    progress.apply(
        _event(4, E.RUN_EVENT_TYPE_STEP_SUCCEEDED, step_id="ask", step_state=R.STEP_STATE_SUCCEEDED)
    )
    assert progress.steps["ask"].message == ""
    progress.apply(
        _event(5, E.RUN_EVENT_TYPE_STEP_SKIPPED, step_id="late", message="when was false")
    )
    assert progress.steps["late"].message == "when was false"


def test_a_running_step_without_progress_pulses_instead_of_an_empty_bar() -> None:
    from podium.cli.progress import _progress_cell

    running = StepProgress("s", state=run_pb2.STEP_STATE_RUNNING)
    cell = _progress_cell(running)
    assert getattr(cell, "total", 1.0) is None and getattr(cell, "pulse", False)
    reporting = StepProgress("s", state=run_pb2.STEP_STATE_RUNNING, fraction=0.5)
    assert getattr(_progress_cell(reporting), "completed", None) == 0.5


def test_an_item_failure_line_carries_its_message_once() -> None:
    failure = common_pb2.Failure(type="ValueError", message="bad row 3")
    line = event_line(
        _event(
            7,
            E.RUN_EVENT_TYPE_ITEM_FAILED,
            step_id="rows",
            item=3,
            failure=failure,
            message="bad row 3",
        )
    )
    assert line.count("bad row 3") == 1
