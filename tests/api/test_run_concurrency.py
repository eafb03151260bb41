"""A workflow concurrency quota bounds its running runs: later runs stay
PENDING and start, first come first served, as earlier ones end."""

from __future__ import annotations

import itertools

from podium.governance.policy import Policy
from podium.testing import (
    HoldAgent,
    collect_events,
    create_workflow,
    get_run,
    plugins_with,
    serving,
    start_run,
    step_reaches,
)
from podium.v1 import execution_service_pb2 as X
from podium.v1 import run_pb2 as R

POLICY = Policy.model_validate(
    {
        "quotas": [
            {"name": "one-slow", "scope": "workflow:slow", "dimension": "concurrency", "limit": 1}
        ]
    }
)


# The runs' one step holds until released: the first run is surely running, and the others
# surely waiting, when the test looks.
SLOW = {"steps": [{"id": "a", "agent": "hold"}]}


async def test_runs_beyond_the_limit_wait_pending_and_start_in_order(db_path: str) -> None:
    hold = HoldAgent()
    async with serving(db_path, policy=POLICY, plugins=plugins_with([hold])) as (_, stubs):
        await create_workflow(stubs, "slow", SLOW)
        first = await start_run(stubs, "slow")
        second = await start_run(stubs, "slow")
        third = await start_run(stubs, "slow")
        await step_reaches(stubs, first.name, "a", R.STEP_STATE_RUNNING)
        states = [(await get_run(stubs, r.name)).state for r in (first, second, third)]
        assert states == [R.RUN_STATE_RUNNING, R.RUN_STATE_PENDING, R.RUN_STATE_PENDING]
        hold.release()
        await collect_events(stubs, third.name)
        runs = [await get_run(stubs, r.name) for r in (first, second, third)]
        assert [r.state for r in runs] == [R.RUN_STATE_SUCCEEDED] * 3
        # Never two at once: each started after the previous one ended.
        for earlier, later in itertools.pairwise(runs):
            assert earlier.end_time.ToNanoseconds() <= later.start_time.ToNanoseconds()


async def test_a_waiting_run_can_be_cancelled_and_the_next_one_starts(db_path: str) -> None:
    hold = HoldAgent()
    async with serving(db_path, policy=POLICY, plugins=plugins_with([hold])) as (_, stubs):
        await create_workflow(stubs, "slow", SLOW)
        first = await start_run(stubs, "slow")
        waiting = await start_run(stubs, "slow")
        last = await start_run(stubs, "slow")
        cancelled = (await stubs.executions.CancelRun(X.CancelRunRequest(name=waiting.name))).run
        assert cancelled.state == R.RUN_STATE_CANCELLED
        hold.release()
        await collect_events(stubs, last.name)
        assert (await get_run(stubs, first.name)).state == R.RUN_STATE_SUCCEEDED
        assert (await get_run(stubs, last.name)).state == R.RUN_STATE_SUCCEEDED
