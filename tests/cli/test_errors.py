"""The CLI fails with one line on stderr and the documented exit code, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from podium.cli.main import main
from podium.v1 import workflow_service_pb2, workflow_service_pb2_grpc

NOWHERE = "127.0.0.1:1"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["runs", "list"],
        ["runs", "get", "abc"],
        ["workflows", "list"],
        ["runs", "start", "erp", "--input", '{"a": 1}'],
        ["runs", "watch", "abc"],
    ],
)
def test_unreachable_server(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run_cli(capsys, "--address", NOWHERE, *argv)
    assert code == 1
    line = assert_one_line(err)
    assert line == (
        f"error: cannot reach the Podium server at {NOWHERE} (is `podium serve` running?)"
    )


def test_address_after_the_command_and_from_env(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run_cli(capsys, "runs", "get", "abc", "--address", NOWHERE)
    assert code == 1 and NOWHERE in err
    monkeypatch.setenv("PODIUM_ADDRESS", "127.0.0.1:2")
    code, _, err = run_cli(capsys, "runs", "get", "abc")
    assert code == 1 and "127.0.0.1:2" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["runs", "start", "erp", "--input", "{bad"], "argument --input: invalid JSON"),
        (["runs", "start", "erp", "--input", "[1, 2]"], "expected a JSON object, got list"),
        (["runs", "start", "erp", "--input", "@missing.json"], "missing.json: no such file"),
        (["runs", "start", "erp", "--label", "novalue"], "expected KEY=VALUE"),
        (["runs", "list", "--state", "sleeping"], "unknown run state 'sleeping'"),
        (["runs", "start"], "required: WORKFLOW"),
        (["workflows", "apply"], "required: -f/--file"),
        (["workflows", "apply", "-f", "missing.yaml"], "missing.yaml: no such file"),
        (["nonsense"], "invalid choice: 'nonsense'"),
        ([], "required: COMMAND"),
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    code, out, err = run_cli(capsys, "--address", NOWHERE, *argv)
    assert code == 2
    assert expected in assert_one_line(err)
    assert out == ""


def test_bad_definition_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("workflow_id: erp\nspec:\n  steps: [{id: a, agnet: echo}]\n")
    code, _, err = run_cli(capsys, "--address", NOWHERE, "workflows", "validate", "-f", str(path))
    assert code == 2
    assert assert_one_line(err) == (
        f"error: {path}: spec.steps[0]: unknown field 'agnet' (did you mean 'agent'?)"
    )


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "runs", "start", "--help")
    assert code == 0
    assert "--max-concurrency" in out


class _Rejecting(workflow_service_pb2_grpc.WorkflowServiceServicer):
    def ValidateWorkflow(
        self,
        request: workflow_service_pb2.ValidateWorkflowRequest,
        context: grpc.ServicerContext,
    ) -> workflow_service_pb2.ValidateWorkflowResponse:
        info, bad = any_pb2.Any(), any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason="INVALID_WORKFLOW", domain="podium"))
        violation = error_details_pb2.BadRequest.FieldViolation(
            field="spec.steps[1].agent", description="unknown agent 'nope'"
        )
        bad.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
        status = status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message="invalid workflow", details=[info, bad]
        )
        context.abort_with_status(rpc_status.to_status(status))
        raise AssertionError("abort_with_status returns only by raising")


@pytest.fixture
def rejecting_server() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    # The .pyi marks every RPC abstract; at run time the base answers UNIMPLEMENTED.
    servicer = _Rejecting()  # type: ignore[abstract]
    workflow_service_pb2_grpc.add_WorkflowServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


def test_server_error_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, rejecting_server: str
) -> None:
    path = tmp_path / "wf.json"
    path.write_text('{"workflow_id": "erp", "spec": {"steps": [{"id": "a", "agent": "nope"}]}}')
    code, _, err = run_cli(
        capsys, "--address", rejecting_server, "workflows", "validate", "-f", str(path)
    )
    assert code == 1
    assert (
        assert_one_line(err) == "error: INVALID_ARGUMENT: spec.steps[1].agent: unknown agent 'nope'"
    )


def test_unimplemented_rpc_is_one_line(
    capsys: pytest.CaptureFixture[str], rejecting_server: str
) -> None:
    code, _, err = run_cli(capsys, "--address", rejecting_server, "workflows", "get", "erp")
    assert code == 1
    assert assert_one_line(err).startswith("error: UNIMPLEMENTED: ")


def test_serve_without_the_server_distribution(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    # A None entry makes the import fail as if the module were not installed.
    monkeypatch.setitem(sys.modules, "podium.server.main", None)
    code, _, err = run_cli(capsys, "serve")
    assert code == 2
    assert "podium serve needs the 'podium' distribution installed" in assert_one_line(err)
