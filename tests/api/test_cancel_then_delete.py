"""What CancelRun answers holds for the next call: once it returns, the run
has ended and left the engine's running set, so a DeleteRun made right after
it (no turn of the event loop in between) deletes the run instead of finding
it still running. The run's end commits in one batch and its leaving the
running set is that batch's after-commit callback, which the store may hold
for a while after the commit (store/group_commit.py)."""

from __future__ import annotations

from pathlib import Path

from podium.testing import HoldAgent, create_workflow, eventually, plugins_with, serving, start_run


async def test_a_run_cancelled_through_the_engine_can_be_deleted_at_once(tmp_path: Path) -> None:
    hold = HoldAgent()
    spec = {"steps": [{"id": "slow", "agent": "hold"}]}
    async with serving(str(tmp_path / "podium.db"), plugins=plugins_with([hold])) as (
        server,
        stubs,
    ):
        await create_workflow(stubs, "held", spec)
        run_id = (await start_run(stubs, "held")).name.removeprefix("runs/")
        await eventually(lambda: "slow" in hold.held)

        await server.engine.cancel_run(run_id)
        await server.engine.delete_run(run_id)

        assert run_id not in server.engine.active
