"""Hostile CreateWorkflow quota-capacity checks through a real server: several
windows on one model (the smallest capacity decides, each exceeded quota is
named), burst above and at the limit, a workflow- and a tenant-scoped quota,
and quotas changed at runtime (UpdateQuota, DeleteQuota) after workflows
exist: the next CreateWorkflow sees the new capacity."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2

from podium.core.clock import ManualClock
from podium.governance.policy import Policy
from podium.testing import create_workflow, serving
from podium.testing.errors import field_violations
from podium.v1 import control_service_pb2

C = control_service_pb2
MODEL = "model:simulated/sim-small"


def step(max_tokens: int, **config: Any) -> dict[str, Any]:
    return {"id": "ask", "agent": "llm", "config": {"max_tokens": max_tokens, **config}}


def quota(name: str, limit: float, window: str, **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "scope": MODEL,
        "dimension": "output_tokens",
        "limit": limit,
        "window": window,
        **more,
    }


async def refused(stubs: Any, workflow: str, spec: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create_workflow(stubs, workflow, spec)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return field_violations(caught.value)


async def test_several_windows_the_smallest_capacity_decides(db_path: str) -> None:
    rules = Policy.model_validate(
        {
            "quotas": [
                quota("per-day", 100_000, "day"),
                quota("per-minute", 2000, "minute", burst=3000),  # burst above the limit
                quota("per-second", 50, "second", burst=1500),
            ]
        }
    )
    async with serving(db_path, policy=rules, clock=ManualClock()) as (_, stubs):
        await create_workflow(stubs, "at-burst", {"steps": [step(1500)]})
        violations = await refused(stubs, "over", {"steps": [step(3001)]})
        named = sorted(d.split("quota ")[1].split(" ")[0] for _, d in violations)
        assert named == ["'per-minute'", "'per-second'"]
        assert {f for f, _ in violations} == {"spec.steps[0].config.max_tokens"}
        [(_, only)] = await refused(stubs, "over2", {"steps": [step(1501)]})
        assert "per-second" in only and "capacity 1500" in only


async def test_tenant_and_agent_scopes(db_path: str) -> None:
    rules = Policy.model_validate(
        {
            "quotas": [
                {"name": "ten", "scope": "tenant:default", "dimension": "tokens", "limit": 900},
                {"name": "ag", "scope": "agent:llm", "dimension": "requests", "limit": 0.5},
            ]
        }
    )
    async with serving(db_path, policy=rules, clock=ManualClock()) as (_, stubs):
        # Half a request per minute can never admit one request: every llm step fails.
        violations = await refused(stubs, "w", {"steps": [step(901)]})
        text = " ".join(d for _, d in violations)
        assert "'ten'" in text and "'ag'" in text and "1 requests" in text
        # A step that is not an LLM call is not concerned.
        await create_workflow(stubs, "echo", {"steps": [{"id": "e", "agent": "echo"}]})


async def test_quotas_changed_after_workflows_exist(db_path: str) -> None:
    async with serving(db_path, clock=ManualClock()) as (_, stubs):
        await create_workflow(stubs, "w", {"steps": [step(800)]})
        lowered = C.Quota(
            name="rt",
            scope=C.Scope(kind=C.SCOPE_KIND_MODEL, value="simulated/sim-small"),
            dimension=C.QUOTA_DIMENSION_OUTPUT_TOKENS,
            limit=500,
            window=duration_pb2.Duration(seconds=60),
        )
        await stubs.control.UpdateQuota(C.UpdateQuotaRequest(quota=lowered))
        # The next version of the same workflow is held to the new capacity.
        [(_, description)] = await refused(stubs, "w", {"steps": [step(800)]})
        assert "'rt'" in description and "capacity 500" in description
        lowered.burst = 800
        await stubs.control.UpdateQuota(C.UpdateQuotaRequest(quota=lowered))
        await create_workflow(stubs, "w", {"steps": [step(800)]})
        lowered.burst = 0
        await stubs.control.UpdateQuota(C.UpdateQuotaRequest(quota=lowered))
        await refused(stubs, "w", {"steps": [step(800)]})
        await stubs.control.DeleteQuota(C.DeleteQuotaRequest(name="rt"))
        await create_workflow(stubs, "w", {"steps": [step(800)]})
