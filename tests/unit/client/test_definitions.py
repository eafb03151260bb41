"""Client pieces that need no Podium server: definitions, names, money and error decoding."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

import podium.client
from podium.client import (
    AsyncClient,
    Client,
    DefinitionError,
    PodiumError,
    format_usd,
    from_decimal,
    load_definition,
    run_name,
    to_decimal,
    workflow_name,
)
from podium.v1 import common_pb2, workflow_service_pb2, workflow_service_pb2_grpc

YAML_DEFINITION = """\
workflow_id: erp
spec:
  description: nightly ERP sync
  maxConcurrency: 2
  steps:
    - id: extract
      agent: echo
      config: {released: 2024-01-02, retries: 3}
    - id: load
      agent: echo
      depends_on: [extract]
      input: {rows: "steps.extract.output.rows"}
"""


def test_public_surface_is_pinned() -> None:
    assert set(podium.client.__all__) >= {"AsyncClient", "Client", "PodiumError"}
    for name in podium.client.__all__:
        assert hasattr(podium.client, name), name


def test_yaml_definition_accepts_snake_and_camel_case(tmp_path: Path) -> None:
    path = tmp_path / "erp.yaml"
    path.write_text(YAML_DEFINITION)
    request = load_definition(path)
    assert request.workflow_id == "erp"
    assert request.spec.max_concurrency == 2
    assert [s.id for s in request.spec.steps] == ["extract", "load"]
    assert list(request.spec.steps[1].depends_on) == ["extract"]
    assert request.spec.steps[1].input["rows"] == "steps.extract.output.rows"
    # Dates stay strings: a Struct cannot hold a datetime.
    assert request.spec.steps[0].config["released"] == "2024-01-02"


def test_json_file_and_mapping_give_the_same_request(tmp_path: Path) -> None:
    document = {"workflowId": "erp", "spec": {"steps": [{"id": "a", "agent": "echo"}]}}
    path = tmp_path / "erp.json"
    path.write_text(json.dumps(document))
    assert load_definition(str(path)) == load_definition(document)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.yaml", None, "missing.yaml: no such file"),
        ("bad.yaml", "spec: [unclosed", "bad.yaml: invalid YAML at line"),
        ("bad.json", "{nope}", "bad.json: invalid JSON at line 1 column 2"),
        ("list.yaml", "- a\n- b\n", "list.yaml: expected a mapping with 'workflow_id' and 'spec'"),
        ("empty.yaml", "", "empty.yaml: expected a mapping"),
        (
            "typo.yaml",
            "workflow_id: x\nspec: {stepz: []}\n",
            "typo.yaml: spec: unknown field 'stepz'",
        ),
        (
            "type.yaml",
            "workflow_id: x\nspec: {max_concurrency: lots}\n",
            "type.yaml: spec.max_concurrency:",
        ),
    ],
)
def test_bad_definition_files_raise_one_line(
    tmp_path: Path, name: str, content: str | None, expected: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(DefinitionError) as caught:
        load_definition(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path)), message
    assert expected in message


def test_names_are_normalized() -> None:
    assert workflow_name("erp") == "workflows/erp"
    assert workflow_name("workflows/erp") == "workflows/erp"
    assert run_name("abc") == "runs/abc"
    assert run_name("runs/abc") == "runs/abc"
    with pytest.raises(ValueError, match="expected workflows/"):
        workflow_name("runs/abc")
    with pytest.raises(ValueError, match="empty run name"):
        run_name(" ")


@pytest.mark.parametrize(
    ("amount", "units", "nanos"),
    [
        ("0", 0, 0),
        ("0.001234", 0, 1_234_000),
        ("12.5", 12, 500_000_000),
        ("-1.75", -1, -750_000_000),
        ("-0.000000001", 0, -1),
    ],
)
def test_money_round_trips(amount: str, units: int, nanos: int) -> None:
    money = from_decimal(Decimal(amount))
    assert (money.currency_code, money.units, money.nanos) == ("USD", units, nanos)
    assert to_decimal(money) == Decimal(amount)


def test_money_formatting() -> None:
    assert format_usd(common_pb2.Money(currency_code="USD", nanos=1_234_000)) == "$0.001234"
    assert format_usd(Decimal("3")) == "$3.00"
    assert format_usd(Decimal("0.1")) == "$0.10"
    assert format_usd(Decimal("-2.5")) == "-$2.50"


class _RejectingWorkflows(workflow_service_pb2_grpc.WorkflowServiceServicer):
    """Answers every ValidateWorkflow the way the server rejects a bad definition."""

    async def ValidateWorkflow(
        self,
        request: workflow_service_pb2.ValidateWorkflowRequest,
        context: grpc.aio.ServicerContext[
            workflow_service_pb2.ValidateWorkflowRequest,
            workflow_service_pb2.ValidateWorkflowResponse,
        ],
    ) -> workflow_service_pb2.ValidateWorkflowResponse:
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason="INVALID_WORKFLOW", domain="podium"))
        bad = any_pb2.Any()
        bad.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field="spec.steps[2].depends_on", description="unknown step 'x'"
                    ),
                    error_details_pb2.BadRequest.FieldViolation(
                        field="spec.steps[1].agent", description="unknown agent 'nope'"
                    ),
                ]
            )
        )
        status = status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message="invalid workflow", details=[info, bad]
        )
        rich = rpc_status.to_status(status)
        await context.abort(rich.code, rich.details, trailing_metadata=rich.trailing_metadata)


@pytest.fixture
async def rejecting_server() -> AsyncIterator[str]:
    server = grpc.aio.server()
    # The .pyi marks every RPC abstract; at run time the base answers UNIMPLEMENTED.
    servicer = _RejectingWorkflows()  # type: ignore[abstract]
    workflow_service_pb2_grpc.add_WorkflowServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(grace=None)


DEFINITION = {"workflow_id": "erp", "spec": {"steps": [{"id": "a", "agent": "nope"}]}}


def _assert_rich_error(error: PodiumError) -> None:
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_WORKFLOW"
    assert error.domain == "podium"
    assert error.message == "invalid workflow"
    assert error.field_violations == [
        ("spec.steps[2].depends_on", "unknown step 'x'"),
        ("spec.steps[1].agent", "unknown agent 'nope'"),
    ]
    assert str(error) == (
        "INVALID_ARGUMENT [INVALID_WORKFLOW] spec.steps[2].depends_on: unknown step 'x'; "
        "spec.steps[1].agent: unknown agent 'nope'"
    )
    assert not error.unreachable


async def test_async_client_decodes_rich_status(rejecting_server: str) -> None:
    async with AsyncClient(rejecting_server) as client:
        with pytest.raises(PodiumError) as caught:
            await client.validate_workflow(DEFINITION)
    _assert_rich_error(caught.value)


async def test_sync_client_decodes_rich_status(rejecting_server: str) -> None:
    def validate() -> None:
        with Client(rejecting_server) as client:
            client.validate_workflow(DEFINITION)

    # The blocking client runs in a thread so the aio server keeps this loop.
    with pytest.raises(PodiumError) as caught:
        await asyncio.to_thread(validate)
    _assert_rich_error(caught.value)


async def test_plain_status_without_details(rejecting_server: str) -> None:
    async with AsyncClient(rejecting_server) as client:
        with pytest.raises(PodiumError) as caught:
            await client.get_workflow("erp")  # not implemented by the servicer
    error = caught.value
    assert error.code == grpc.StatusCode.UNIMPLEMENTED
    assert error.reason == ""
    assert error.field_violations == []
    assert str(error).startswith("UNIMPLEMENTED ")


def test_unreachable_server_is_unavailable() -> None:
    with Client("127.0.0.1:1", timeout=5) as client, pytest.raises(PodiumError) as caught:
        client.get_run("abc")
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert caught.value.unreachable


def test_default_address_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_ADDRESS", "10.0.0.1:4242")
    with Client() as client:
        assert client.address == "10.0.0.1:4242"
    monkeypatch.delenv("PODIUM_ADDRESS")
    with Client() as client:
        assert client.address == "127.0.0.1:50051"
