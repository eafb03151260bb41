"""A burst of StartRun from one AsyncClient completes without errors: the
client bounds its calls in flight and retries what grpcio cancels, with the
same request_id, so every call starts exactly one run."""

from __future__ import annotations

import asyncio
import os

from podium.client import AsyncClient, FlowPolicy
from podium.server.app import PodiumServer
from podium.testing import Stubs, create_workflow, echo_step
from podium.v1 import execution_service_pb2

# 5,000 is the burst of the finding; 3,000 keeps this test within seconds on
# two shared cores and is still past where grpcio starts cancelling calls
# on one channel (about 2,000).
BURST = int(os.environ.get("PODIUM_BURST", "3000"))


async def count_runs(stubs: Stubs) -> int:
    total, token = 0, ""
    while True:
        page = await stubs.executions.ListRuns(
            execution_service_pb2.ListRunsRequest(page_size=1000, page_token=token)
        )
        total += len(page.runs)
        token = page.next_page_token
        if not token:
            return total


async def test_a_burst_of_runs_from_one_client_has_no_errors(
    server: PodiumServer, stubs: Stubs
) -> None:
    await create_workflow(stubs, "hello", {"steps": [echo_step("greet")]})
    async with AsyncClient(f"127.0.0.1:{server.port}", timeout=None) as client:
        results = await asyncio.gather(
            *(client.start_run("hello", {"n": n}) for n in range(BURST)),
            return_exceptions=True,
        )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == [], f"{len(errors)} of {BURST} failed, e.g. {errors[0]!r}"
    assert len({r.name for r in results if not isinstance(r, BaseException)}) == BURST
    assert await count_runs(stubs) == BURST


def test_the_flow_policy_is_configurable_and_checked() -> None:
    assert FlowPolicy().max_in_flight == 1000
    assert FlowPolicy(max_in_flight=10).max_in_flight == 10
    for bad in ({"max_in_flight": 0}, {"max_attempts": 0}):
        try:
            FlowPolicy(**bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")
    assert 0 <= FlowPolicy(initial_backoff=1, max_backoff=2).backoff(5) <= 2
