"""Every RPC of every service, called with every role and with no
credentials, through a real server with authentication on: a role the access
table allows is never refused, any other role gets PERMISSION_DENIED, a call
without credentials UNAUTHENTICATED; health and reflection stay open."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2

from podium.identity.access import TABLE, access_of
from podium.identity.principal import Role
from podium.server.app import SERVICE_NAMES
from podium.server.security import SecurityConfig
from podium.testing import Stubs, error_info, serving
from podium.testing.identity import new_token, stubs_for
from podium.v1 import (
    control_service_pb2,
    execution_service_pb2,
    identity_service_pb2,
    progress_service_pb2,
    schedule_service_pb2,
    worker_service_pb2,
    workflow_service_pb2,
)

ROOT = Path(__file__).resolve().parents[2]
_MODULES = (
    workflow_service_pb2,
    execution_service_pb2,
    progress_service_pb2,
    control_service_pb2,
    identity_service_pb2,
    worker_service_pb2,
    schedule_service_pb2,
)
_STUB_OF = {
    "WorkflowService": "workflows",
    "ExecutionService": "executions",
    "ProgressService": "progress",
    "ControlService": "control",
    "IdentityService": "identity",
    "WorkerService": "workers",
    "ScheduleService": "schedules",
}


def every_rpc() -> list[tuple[str, str, Any]]:
    """(full method, service, method descriptor) of every RPC the server serves."""
    found = []
    for module in _MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                found.append((f"/{service.full_name}/{method.name}", service.name, method))
    return found


def test_every_served_rpc_is_in_the_access_table() -> None:
    served = {m for m, _, _ in every_rpc()}
    assert {s for s in SERVICE_NAMES} == {m.lstrip("/").split("/")[0] for m in served}
    assert served == set(TABLE), set(TABLE) ^ served


def test_the_documented_table_is_the_access_table() -> None:
    doc = (ROOT / "docs" / "security.md").read_text()
    rows = re.findall(r"^\| `(\w+)\.(\w+)` \| ([^|]*) \|", doc, re.MULTILINE)
    documented = {
        f"/podium.v1.{service}/{method}": frozenset(
            Role.parse(name) for name in roles.replace(",", " ").split()
        )
        for service, method, roles in rows
    }
    assert documented == {method: access.roles for method, access in TABLE.items()}


async def _call(stubs: Stubs, service: str, method: Any, refused: bool) -> grpc.StatusCode:
    """The call's status code; a watch that is still streaming counts as OK.
    `refused`: the caller may not make this call, so it is answered at once."""
    stub = getattr(stubs, _STUB_OF[service])
    request = message_factory.GetMessageClass(method.input_type)()
    rpc = getattr(stub, method.name)
    try:
        if method.client_streaming:
            # A worker's session: one (empty, so invalid) opening message; it is
            # answered at once either way, so a long deadline costs nothing and
            # keeps a loaded machine from turning a refusal into DEADLINE_EXCEEDED.
            async for _ in rpc(iter([request]), timeout=10):
                break
        elif method.server_streaming:
            # An admitted watch of nothing streams until the deadline, so that one
            # is short; a refusal is answered at once, and a long deadline keeps a
            # loaded machine from turning it into DEADLINE_EXCEEDED.
            async for _ in rpc(request, timeout=10 if refused else 0.5):
                break
        else:
            await rpc(request)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_every_rpc_with_every_role(tmp_path: Path) -> None:
    async with serving(str(tmp_path / "p.db"), security=SecurityConfig(auth=True)) as served:
        server, anonymous = served
        address = served.address
        tokens = {role: await new_token(server, role) for role in Role}

        async def outcomes(role: Role | None) -> dict[str, grpc.StatusCode]:
            if role is None:
                calls = [_call(anonymous, s, m, True) for _, s, m in every_rpc()]
                codes = await asyncio.gather(*calls)
            else:
                async with stubs_for(address, tokens[role]) as stubs:
                    codes = await asyncio.gather(
                        *(
                            _call(stubs, s, m, role not in access_of(full).roles)
                            for full, s, m in every_rpc()
                        )
                    )
            return {full: code for (full, _, _), code in zip(every_rpc(), codes, strict=True)}

        roles = list(Role)
        unauthenticated, *by_role = await asyncio.gather(
            outcomes(None), *(outcomes(role) for role in roles)
        )
        assert set(unauthenticated.values()) == {grpc.StatusCode.UNAUTHENTICATED}
        for role, found in zip(roles, by_role, strict=True):
            for method, code in found.items():
                if role in access_of(method).roles:
                    assert code not in (
                        grpc.StatusCode.PERMISSION_DENIED,
                        grpc.StatusCode.UNAUTHENTICATED,
                    ), (role, method, code)
                else:
                    assert code == grpc.StatusCode.PERMISSION_DENIED, (role, method, code)


async def test_refusals_carry_an_error_info_reason(tmp_path: Path) -> None:
    async with serving(str(tmp_path / "p.db"), security=SecurityConfig(auth=True)) as served:
        viewer = await new_token(served.server, Role.VIEWER)
        request = workflow_service_pb2.DeleteWorkflowRequest(name="workflows/x")
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            async with stubs_for(served.address, viewer) as stubs:
                await stubs.workflows.DeleteWorkflow(request)
        assert error_info(denied.value).reason == "ROLE_NOT_ALLOWED"
        for metadata, reason in [
            ((), "CREDENTIALS_MISSING"),
            ((("authorization", "Basic abc"),), "CREDENTIALS_MALFORMED"),
            ((("authorization", "Bearer pod_short"),), "TOKEN_MALFORMED"),
            ((("authorization", "Bearer pod_0123456789abcdef_guess"),), "TOKEN_INVALID"),
            ((("authorization", "Bearer not-a-jwt"),), "TOKEN_INVALID"),
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await served.stubs.workflows.DeleteWorkflow(request, metadata=metadata)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert error_info(refused.value).reason == reason


async def test_health_and_reflection_stay_open(tmp_path: Path) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async with serving(str(tmp_path / "p.db"), security=SecurityConfig(auth=True)) as served:
        health = await served.stubs.health.Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reflection: Any = reflection_pb2_grpc.ServerReflectionStub(served.stubs.channel)  # type: ignore[arg-type]
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for answer in reflection.ServerReflectionInfo(iter([request])):
            names = {s.name for s in answer.list_services_response.service}
            assert "podium.v1.IdentityService" in names
            break


async def test_without_authentication_every_caller_is_an_admin(tmp_path: Path) -> None:
    async with serving(str(tmp_path / "p.db")) as (_, stubs):
        caller = await stubs.identity.GetCaller(identity_service_pb2.GetCallerRequest())
        assert (caller.subject, caller.tenant) == ("anonymous", "default")
        assert list(caller.roles) == [identity_service_pb2.ROLE_ADMIN]
