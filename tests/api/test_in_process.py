"""serving() (podium.testing.in_process): a real server in the test's event
loop on an ephemeral port, with the start_server options the test chooses,
stopped when the block ends (stopping it first is harmless)."""

from __future__ import annotations

from podium.testing import (
    HoldAgent,
    ManualClock,
    create_workflow,
    plugins_with,
    run_to_end,
    serving,
)
from podium.v1 import control_service_pb2, run_pb2, workflow_service_pb2


async def test_it_serves_on_an_ephemeral_port_with_the_chosen_options(db_path: str) -> None:
    clock = ManualClock()
    hold = HoldAgent("waits")
    async with serving(
        db_path,
        clock=clock,
        plugins=plugins_with([hold]),
        max_running_steps=3,
        retention_seconds=600.0,
        version="9.9",
    ) as served:
        server, stubs = served
        assert served.address == f"127.0.0.1:{server.port}" and server.port > 0
        assert server.engine.services.slots.capacity == 3
        assert server.pruner is not None and server.pruner.max_age == 600
        assert server.plugins.registry.agent("waits") is hold
        status = await stubs.control.GetSystemStatus(control_service_pb2.GetSystemStatusRequest())
        assert status.version == "9.9"
        assert status.start_time.ToSeconds() > 0
        await create_workflow(stubs, "one", {"steps": [{"id": "a", "agent": "echo"}]})
        run, _ = await run_to_end(stubs, "one")
        assert run.state == run_pb2.RUN_STATE_SUCCEEDED
        assert run.start_time.ToSeconds() == int(clock.now())  # the engine's clock
        await server.stop(0.1)  # stopping before the block ends is harmless


async def test_without_a_database_it_keeps_nothing() -> None:
    async with serving() as (_, stubs):
        await create_workflow(stubs, "one", {"steps": [{"id": "a", "agent": "echo"}]})
    async with serving() as (_, stubs):
        listed = await stubs.workflows.ListWorkflows(workflow_service_pb2.ListWorkflowsRequest())
        assert not listed.workflows
