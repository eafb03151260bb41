"""`--rate-limit`: a tenant past its requests per second gets
RESOURCE_EXHAUSTED with ErrorInfo RATE_LIMITED and a RetryInfo."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2

from podium.core.clock import ManualClock
from podium.identity.principal import Role
from podium.server.security import SecurityConfig
from podium.testing import error_info, error_status, serving
from podium.testing.identity import new_token, stubs_for
from podium.v1 import workflow_service_pb2

LIST = workflow_service_pb2.ListWorkflowsRequest()


async def test_over_the_rate_is_resource_exhausted_with_retry_info(tmp_path: Path) -> None:
    clock = ManualClock()
    security = SecurityConfig(auth=True, rate_limit=3.0)
    async with serving(str(tmp_path / "p.db"), security=security, clock=clock) as served:
        token = await new_token(served.server, Role.VIEWER)
        async with stubs_for(served.address, token) as stubs:
            for _ in range(3):
                await stubs.workflows.ListWorkflows(LIST)
            with pytest.raises(grpc.aio.AioRpcError) as limited:
                await stubs.workflows.ListWorkflows(LIST)
            assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error_info(limited.value).reason == "RATE_LIMITED"
            retry = error_details_pb2.RetryInfo()
            detail = next(
                d
                for d in error_status(limited.value).details
                if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)
            )
            detail.Unpack(retry)
            assert retry.retry_delay.ToNanoseconds() == pytest.approx(1e9 / 3, rel=1e-3)
            clock.advance(retry.retry_delay.ToNanoseconds() / 1e9)
            await stubs.workflows.ListWorkflows(LIST)
