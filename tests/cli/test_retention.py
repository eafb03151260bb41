"""`podium serve --retention`, `podium runs delete|approve|reject`: parsing, and the
requests the CLI sends (to a recording ExecutionService, so no engine is involved)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf import message

from podium.cli.inputs import age
from podium.cli.main import main
from podium.client import Client, PodiumError
from podium.v1 import (
    event_pb2,
    execution_service_pb2,
    execution_service_pb2_grpc,
    run_pb2,
)

X = execution_service_pb2


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- --retention ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30d", 30 * 86400),
        ("12h", 12 * 3600),
        ("90m", 90 * 60),
        ("3600s", 3600),
        ("45", 45),
        ("1.5h", 5400),
        ("0", 0),
        (" 2D ", 2 * 86400),
    ],
)
def test_age_parses_units(text: str, seconds: float) -> None:
    assert age(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "-1d", "1w", "1 d", "10x", "1e3", "9" * 400 + "d"])
def test_age_rejects_anything_else(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected an age such as 30d"):
        age(text)


@pytest.fixture
def served_with(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replaces run_server: records the arguments `podium serve` passes."""
    import podium.server.main

    calls: dict[str, Any] = {}

    def record(**kwargs: Any) -> int:
        calls.update(kwargs)
        return 0

    monkeypatch.setattr(podium.server.main, "run_server", record)
    return calls


def test_serve_passes_retention_seconds(
    capsys: pytest.CaptureFixture[str], served_with: dict[str, Any]
) -> None:
    code, _, _ = run_cli(capsys, "serve", "--retention", "12h", "--db", "x.db")
    assert code == 0
    assert served_with["retention_seconds"] == 12 * 3600
    assert served_with["db_path"] == "x.db"


@pytest.mark.parametrize("argv", [[], ["--retention", "0"]])
def test_serve_keeps_runs_forever_by_default(
    capsys: pytest.CaptureFixture[str], served_with: dict[str, Any], argv: list[str]
) -> None:
    code, _, _ = run_cli(capsys, "serve", *argv)
    assert code == 0
    assert served_with["retention_seconds"] is None


def test_serve_with_a_bad_retention_is_a_one_line_usage_error(
    capsys: pytest.CaptureFixture[str], served_with: dict[str, Any]
) -> None:
    code, out, err = run_cli(capsys, "serve", "--retention", "forever")
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: argument --retention: expected an age such as 30d")
    assert served_with == {}


# -- runs delete / approve / reject ---------------------------------------------------------


@dataclass
class _Recording(execution_service_pb2_grpc.ExecutionServiceServicer):
    requests: list[message.Message] = field(default_factory=list)

    def DeleteRun(
        self, request: X.DeleteRunRequest, context: grpc.ServicerContext
    ) -> X.DeleteRunResponse:
        self.requests.append(request)
        if request.name == "runs/busy":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "run 'busy' has not finished")
        return X.DeleteRunResponse()

    def ResolveApproval(
        self, request: X.ResolveApprovalRequest, context: grpc.ServicerContext
    ) -> X.ResolveApprovalResponse:
        self.requests.append(request)
        return X.ResolveApprovalResponse(
            run=run_pb2.Run(name=request.run, state=run_pb2.RUN_STATE_RUNNING)
        )


@dataclass
class Fake:
    address: str
    servicer: _Recording


@pytest.fixture
def fake() -> Iterator[Fake]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    # The .pyi marks every RPC abstract; at run time the base answers UNIMPLEMENTED.
    servicer = _Recording()  # type: ignore[abstract]
    execution_service_pb2_grpc.add_ExecutionServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield Fake(f"127.0.0.1:{port}", servicer)
    server.stop(grace=None)


def test_runs_delete(capsys: pytest.CaptureFixture[str], fake: Fake) -> None:
    code, out, err = run_cli(capsys, "--address", fake.address, "runs", "delete", "abc")
    assert (code, err) == (0, "")
    assert out.strip() == "deleted runs/abc"
    assert fake.servicer.requests == [X.DeleteRunRequest(name="runs/abc")]


def test_runs_delete_of_a_running_run_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], fake: Fake
) -> None:
    code, _, err = run_cli(capsys, "--address", fake.address, "runs", "delete", "runs/busy")
    assert code == 1
    assert err.strip() == "error: FAILED_PRECONDITION: run 'busy' has not finished"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["approve", "abc", "review"],
            X.ResolveApprovalRequest(
                run="runs/abc", step_id="review", decision=event_pb2.APPROVAL_DECISION_APPROVE
            ),
        ),
        (
            ["reject", "runs/abc", "review", "--comment", "numbers are off"],
            X.ResolveApprovalRequest(
                run="runs/abc",
                step_id="review",
                decision=event_pb2.APPROVAL_DECISION_REJECT,
                comment="numbers are off",
            ),
        ),
    ],
)
def test_runs_approve_and_reject(
    capsys: pytest.CaptureFixture[str],
    fake: Fake,
    argv: list[str],
    expected: X.ResolveApprovalRequest,
) -> None:
    code, out, err = run_cli(capsys, "--address", fake.address, "runs", *argv)
    assert (code, err) == (0, "")
    verb = "approved" if argv[0] == "approve" else "rejected"
    assert out.strip() == f"{verb} review of runs/abc: run RUNNING"
    assert fake.servicer.requests == [expected]


def test_runs_approve_needs_a_step(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "--address", "127.0.0.1:1", "runs", "approve", "abc")
    assert code == 2
    assert "required: STEP" in err


def test_client_methods(fake: Fake) -> None:
    with Client(fake.address) as client:
        client.delete_run("x")
        run = client.resolve_approval("x", "gate", approve=False, comment="no")
        with pytest.raises(PodiumError) as busy:
            client.delete_run("busy")
    assert run.name == "runs/x"
    assert busy.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert fake.servicer.requests[:2] == [
        X.DeleteRunRequest(name="runs/x"),
        X.ResolveApprovalRequest(
            run="runs/x",
            step_id="gate",
            decision=event_pb2.APPROVAL_DECISION_REJECT,
            comment="no",
        ),
    ]
