"""Server reflection answers in both protocol versions, asked by a real reflection client:
`buf curl` (the buf CLI the repository pins), told which version to speak. It lists the services,
reads their schemas and calls an RPC knowing nothing but what reflection told it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from podium.testing import InProcessServer, create_workflow, echo_step

BUF = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "buf"
PODIUM_SERVICES = {
    "podium.v1.WorkflowService",
    "podium.v1.ExecutionService",
    "podium.v1.ProgressService",
    "podium.v1.ControlService",
}


async def buf_curl(server: InProcessServer, version: str, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        str(BUF),
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "--reflect-protocol",
        version,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


def base_url(server: InProcessServer) -> str:
    return f"http://127.0.0.1:{server.server.port}"


@pytest.mark.parametrize("version", ["grpc-v1", "grpc-v1alpha"])
async def test_reflection_lists_every_service(
    in_process_server: InProcessServer, version: str
) -> None:
    listed = set(
        (await buf_curl(in_process_server, version, "--list-services", base_url(in_process_server)))
        .strip()
        .splitlines()
    )
    assert (
        PODIUM_SERVICES
        | {
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        }
        <= listed
    )


@pytest.mark.parametrize("version", ["grpc-v1", "grpc-v1alpha"])
async def test_a_client_calls_an_rpc_from_what_reflection_told_it(
    in_process_server: InProcessServer, version: str
) -> None:
    await create_workflow(in_process_server.stubs, "hello", {"steps": [echo_step("greet")]})
    out = await buf_curl(
        in_process_server,
        version,
        "--data",
        json.dumps({"name": "workflows/hello"}),
        f"{base_url(in_process_server)}/podium.v1.WorkflowService/GetWorkflow",
    )
    workflow = json.loads(out)["workflow"]
    assert workflow["name"] == "workflows/hello"
    assert workflow["spec"]["steps"][0]["id"] == "greet"


async def test_reflection_describes_itself_in_v1(in_process_server: InProcessServer) -> None:
    methods = await buf_curl(
        in_process_server, "grpc-v1", "--list-methods", base_url(in_process_server)
    )
    assert "grpc.reflection.v1.ServerReflection/ServerReflectionInfo" in methods.splitlines()
