"""`podium runs watch` / `runs start --watch` against a fake server replaying a scripted run."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from rich.console import Console

from podium.cli.context import Context
from podium.cli.main import main
from podium.cli.progress import RunProgress
from podium.cli.watch import follow_run
from podium.v1 import (
    common_pb2,
    event_pb2,
    execution_service_pb2,
    execution_service_pb2_grpc,
    progress_service_pb2,
    progress_service_pb2_grpc,
    run_pb2,
)

E, R = event_pb2, run_pb2


def ts(seconds: float) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=1_750_000_000 + int(seconds), nanos=0)


def usd(nanos: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code="USD", nanos=nanos)


def scripted_events(succeed: bool) -> list[event_pb2.RunEvent]:
    def ev(
        seq: int, type_: event_pb2.RunEventType.ValueType, **fields: object
    ) -> event_pb2.RunEvent:
        fields.setdefault("run_state", R.RUN_STATE_RUNNING)
        return event_pb2.RunEvent(
            run="runs/abc",
            workflow="workflows/erp",
            sequence=seq,
            time=ts(seq),
            type=type_,
            **fields,  # type: ignore[arg-type]
        )

    usage = common_pb2.Usage(input_tokens=100, output_tokens=20, calls=1)
    events = [
        ev(1, E.RUN_EVENT_TYPE_RUN_CREATED),
        ev(2, E.RUN_EVENT_TYPE_RUN_STARTED),
        ev(
            3,
            E.RUN_EVENT_TYPE_STEP_STARTED,
            step_id="extract",
            attempt=1,
            step_state=R.STEP_STATE_RUNNING,
        ),
        ev(
            4,
            E.RUN_EVENT_TYPE_STEP_PROGRESS,
            step_id="extract",
            progress=0.5,
            message="half way",
            step_state=R.STEP_STATE_RUNNING,
        ),
        ev(
            5,
            E.RUN_EVENT_TYPE_LLM_CALL,
            step_id="extract",
            provider="simulated",
            model="sim-1",
            usage=usage,
            cost=usd(1_234_000),
        ),
        ev(
            6,
            E.RUN_EVENT_TYPE_STEP_SUCCEEDED,
            step_id="extract",
            attempt=1,
            step_state=R.STEP_STATE_SUCCEEDED,
            usage=usage,
            cost=usd(1_234_000),
        ),
        ev(
            7,
            E.RUN_EVENT_TYPE_STEP_STARTED,
            step_id="load",
            attempt=1,
            step_state=R.STEP_STATE_RUNNING,
        ),
    ]
    if succeed:
        events += [
            ev(
                8,
                E.RUN_EVENT_TYPE_STEP_SUCCEEDED,
                step_id="load",
                attempt=1,
                step_state=R.STEP_STATE_SUCCEEDED,
            ),
            ev(
                9,
                E.RUN_EVENT_TYPE_RUN_SUCCEEDED,
                run_state=R.RUN_STATE_SUCCEEDED,
                usage=usage,
                cost=usd(1_234_000),
            ),
        ]
    else:
        failure = common_pb2.Failure(type="ValueError", message="bad row\nat 3")
        events += [
            ev(
                8,
                E.RUN_EVENT_TYPE_STEP_FAILED,
                step_id="load",
                attempt=1,
                step_state=R.STEP_STATE_FAILED,
                failure=failure,
            ),
            ev(9, E.RUN_EVENT_TYPE_RUN_FAILED, run_state=R.RUN_STATE_FAILED, failure=failure),
        ]
    return events


class FakeRuns(
    execution_service_pb2_grpc.ExecutionServiceServicer,
    progress_service_pb2_grpc.ProgressServiceServicer,
):
    def __init__(self, succeed: bool) -> None:
        self.succeed = succeed
        self.events = scripted_events(succeed)
        self.started: list[execution_service_pb2.StartRunRequest] = []

    def run(self) -> run_pb2.Run:
        steps = [
            run_pb2.StepRun(step_id="extract", agent="echo", state=R.STEP_STATE_SUCCEEDED),
            run_pb2.StepRun(step_id="load", agent="echo", state=R.STEP_STATE_SUCCEEDED),
        ]
        run = run_pb2.Run(
            name="runs/abc",
            workflow="workflows/erp",
            workflow_version=1,
            state=R.RUN_STATE_SUCCEEDED if self.succeed else R.RUN_STATE_FAILED,
            steps=steps,
            create_time=ts(1),
            start_time=ts(2),
            end_time=ts(9),
            usage=common_pb2.Usage(input_tokens=100, output_tokens=20, calls=1),
            cost=usd(1_234_000),
        )
        if self.succeed:
            run.output.CopyFrom(
                struct_pb2.Struct(fields={"rows": struct_pb2.Value(number_value=3)})
            )
        else:
            run.failure.CopyFrom(common_pb2.Failure(type="ValueError", message="bad row"))
        return run

    def StartRun(self, request, context):  # type: ignore[no-untyped-def]
        self.started.append(request)
        return execution_service_pb2.StartRunResponse(run=self.run())

    def GetRun(self, request, context):  # type: ignore[no-untyped-def]
        return execution_service_pb2.GetRunResponse(run=self.run())

    def WatchRun(self, request, context):  # type: ignore[no-untyped-def]
        pending = [e for e in self.events if e.sequence > request.after_sequence]
        for start in range(0, len(pending), 3):
            yield progress_service_pb2.WatchRunResponse(events=pending[start : start + 3])


def fake_runs(succeed: bool) -> FakeRuns:
    # The .pyi marks the RPCs not faked here abstract; at run time the base answers UNIMPLEMENTED.
    return FakeRuns(succeed)  # type: ignore[abstract]


def serve(fake: FakeRuns) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    execution_service_pb2_grpc.add_ExecutionServiceServicer_to_server(fake, server)
    progress_service_pb2_grpc.add_ProgressServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture(params=[True, False], ids=["succeeds", "fails"])
def fake(request: pytest.FixtureRequest) -> Iterator[tuple[FakeRuns, str]]:
    runs = fake_runs(succeed=request.param)
    server, address = serve(runs)
    yield runs, address
    server.stop(grace=None)


def test_watch_prints_one_line_per_event_without_a_tty(
    capsys: pytest.CaptureFixture[str], fake: tuple[FakeRuns, str]
) -> None:
    runs, address = fake
    code = main(["--address", address, "runs", "watch", "abc"])
    out, err = capsys.readouterr()
    assert code == (0 if runs.succeed else 1)
    assert err == ""
    lines = out.splitlines()
    event_lines = lines[:9]
    assert [int(line.split()[0]) for line in event_lines] == list(range(1, 10))
    assert "STEP_PROGRESS" in event_lines[3] and "progress=50%" in event_lines[3]
    assert "simulated/sim-1" in event_lines[4] and "tokens=120" in event_lines[4]
    assert "cost=$0.001234" in event_lines[4]
    summary = "\n".join(lines[9:])
    assert "spend: 120 tokens" in summary and "$0.001234" in summary
    if runs.succeed:
        assert lines[9] == "run runs/abc SUCCEEDED in 7.0s"
        assert json.loads(summary[summary.index("{") : summary.rindex("}") + 1]) == {"rows": 3}
    else:
        assert lines[9] == "run runs/abc FAILED in 7.0s"
        assert "failure: ValueError: bad row" in summary
        # A multi-line failure message still makes one event line.
        assert "bad row at 3" in event_lines[7]


def test_watch_after_prints_only_later_events(
    capsys: pytest.CaptureFixture[str], fake: tuple[FakeRuns, str]
) -> None:
    _, address = fake
    main(["--address", address, "runs", "watch", "runs/abc", "--after", "6"])
    lines = capsys.readouterr().out.splitlines()
    assert [int(line.split()[0]) for line in lines[:3]] == [7, 8, 9]
    # Totals still count everything before the cut.
    assert any(line.startswith("spend: 120 tokens") for line in lines)


def test_start_with_watch(capsys: pytest.CaptureFixture[str], fake: tuple[FakeRuns, str]) -> None:
    runs, address = fake
    code = main(
        [
            "--address",
            address,
            "runs",
            "start",
            "erp",
            "--input",
            '{"n": 2}',
            "--label",
            "a=b",
            "--request-id",
            "req-1",
            "--watch",
        ]
    )
    out = capsys.readouterr().out
    assert code == (0 if runs.succeed else 1)
    assert out.startswith("started runs/abc of workflows/erp")
    request = runs.started[0]
    assert request.workflow == "workflows/erp"
    assert request.request_id == "req-1"
    assert dict(request.labels) == {"a": "b"}
    assert request.input["n"] == 2


def test_start_json_prints_the_run(
    capsys: pytest.CaptureFixture[str], fake: tuple[FakeRuns, str]
) -> None:
    runs, address = fake
    assert main(["--address", address, "runs", "start", "erp", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["name"] == "runs/abc"
    assert document["workflow_version"] == "1"  # int64 is a string in the proto JSON mapping
    assert len(runs.started[0].request_id) == 36  # a fresh uuid4 when none is given


def test_live_view_on_a_terminal(fake: tuple[FakeRuns, str]) -> None:
    runs, address = fake
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160, color_system=None)
    ctx = Context(argparse.Namespace(address=address), out=console)
    try:
        code = follow_run(ctx, "abc")
    finally:
        ctx.close()
    assert code == (0 if runs.succeed else 1)
    text = screen.getvalue()
    assert "extract" in text and "load" in text
    assert "$0.001234" in text


def test_progress_totals() -> None:
    fake = fake_runs(succeed=False)
    progress = RunProgress(run_pb2.Run(name="runs/abc", steps=fake.run().steps))
    for event in fake.events[:5]:
        progress.apply(event)
    extract = progress.steps["extract"]
    assert extract.state == R.STEP_STATE_RUNNING
    assert extract.fraction == 0.5
    assert (extract.tokens, str(extract.cost)) == (120, "0.001234000")
    for event in fake.events[5:]:
        progress.apply(event)
    assert progress.steps["load"].state == R.STEP_STATE_FAILED
    assert progress.state == R.RUN_STATE_FAILED
    assert progress.tokens == 120
    assert progress.elapsed() == 7.0
    rendered = io.StringIO()
    Console(file=rendered, width=160, color_system=None).print(progress)
    assert "FAILED" in rendered.getvalue()
