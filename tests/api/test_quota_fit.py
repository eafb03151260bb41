"""A step whose call is larger than a configured quota can ever admit is refused
at CreateWorkflow (INVALID_ARGUMENT, the field and the figures), through a real
server; a call that fits, or one the quota does not cover, is accepted."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from podium.core.clock import ManualClock
from podium.governance.policy import Policy
from podium.testing import create_workflow, serving
from podium.testing.errors import error_info, field_violations

RULES = Policy.model_validate(
    {
        "quotas": [
            {
                "name": "small-tpd",
                "scope": "model:simulated/sim-small",
                "dimension": "output_tokens",
                "limit": 100_000,
                "burst": 1000,
                "window": "day",
            },
            {
                "name": "large-tokens",
                "scope": "model:simulated/sim-large",
                "dimension": "tokens",
                "limit": 500,
                "window": "minute",
            },
        ]
    }
)


def step(max_tokens: int, **config: Any) -> dict[str, Any]:
    return {"id": "ask", "agent": "llm", "config": {"max_tokens": max_tokens, **config}}


async def test_max_tokens_beyond_a_token_quota_is_invalid_argument_with_figures(
    db_path: str,
) -> None:
    async with serving(db_path, policy=RULES, clock=ManualClock()) as (_, stubs):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await create_workflow(stubs, "big", {"steps": [step(1001)]})
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(caught.value).reason == "INVALID_WORKFLOW"
        [(field, description)] = field_violations(caught.value)
        assert field == "spec.steps[0].config.max_tokens"
        assert "small-tpd" in description
        assert "1001 output_tokens" in description
        assert "capacity 1000" in description and "per day" in description

        # Exactly the capacity fits; another model is not under that quota.
        await create_workflow(stubs, "fits", {"steps": [step(1000)]})
        await create_workflow(stubs, "other", {"steps": [step(400, model="sim-large")]})


async def test_a_fallback_target_beyond_its_quota_is_refused_too(db_path: str) -> None:
    fallbacks = [{"provider": "simulated", "model": "sim-large"}]
    async with serving(db_path, policy=RULES, clock=ManualClock()) as (_, stubs):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await create_workflow(stubs, "falls", {"steps": [step(600, fallbacks=fallbacks)]})
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        [(field, description)] = field_violations(caught.value)
        assert field == "spec.steps[0].config.max_tokens"
        assert "large-tokens" in description and "simulated/sim-large" in description
        assert "capacity 500" in description


async def test_without_quotas_any_max_tokens_is_accepted(db_path: str) -> None:
    async with serving(db_path, clock=ManualClock()) as (_, stubs):
        await create_workflow(stubs, "free", {"steps": [step(100_000)]})
