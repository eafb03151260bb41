"""WorkflowService through a real server: versions, the spec's round trip,
listing and pagination, deletion, validation's levels and critical path."""

from __future__ import annotations

import grpc
import pytest

from podium.testing import (
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    error_info,
    field_violations,
    get_run,
    make_spec,
    run_to_end,
    start_run,
)
from podium.v1 import (
    event_pb2,
    run_pb2,
    workflow_service_pb2,
)

E = event_pb2
R = run_pb2
W = workflow_service_pb2


LINEAR = {"steps": [echo_step("a"), echo_step("b", "a")]}


async def test_create_workflow_versions_and_get(stubs: Stubs) -> None:
    first = await create_workflow(stubs, "greet", {"description": "one", **LINEAR})
    second = await create_workflow(stubs, "greet", {"description": "two", **LINEAR})

    assert (first.name, first.version) == ("workflows/greet", 1)
    assert (second.name, second.version) == ("workflows/greet", 2)
    assert first.HasField("create_time")
    assert [s.id for s in first.spec.steps] == ["a", "b"]
    assert list(first.spec.steps[1].depends_on) == ["a"]

    latest = (
        await stubs.workflows.GetWorkflow(W.GetWorkflowRequest(name="workflows/greet"))
    ).workflow
    assert (latest.version, latest.spec.description) == (2, "two")
    v1 = (
        await stubs.workflows.GetWorkflow(W.GetWorkflowRequest(name="workflows/greet", version=1))
    ).workflow
    assert (v1.version, v1.spec.description) == (1, "one")
    assert v1.spec == first.spec

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stubs.workflows.GetWorkflow(W.GetWorkflowRequest(name="workflows/greet", version=3))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(missing.value).domain == "podium"


async def test_workflow_spec_round_trips_config_and_output(stubs: Stubs) -> None:
    spec = {
        "description": "all fields",
        "steps": [
            {
                "id": "a",
                "agent": "echo",
                "input": {"x": "input.x + 1"},
                "config": {"delay_ms": 1},
                "description": "first",
            },
            # No config: it comes back unset, not as an empty Struct.
            echo_step("b", "a"),
        ],
        "output": {"x": "steps.a.output.x"},
        "maxConcurrency": 3,
        "labels": {"team": "search"},
    }
    created = await create_workflow(stubs, "full", spec)
    fetched = (
        await stubs.workflows.GetWorkflow(W.GetWorkflowRequest(name="workflows/full"))
    ).workflow
    assert fetched.spec == make_spec(spec)
    assert created.spec == make_spec(spec)


async def test_list_workflows_paginates_latest_versions(stubs: Stubs) -> None:
    for workflow_id in ("wf-c", "wf-a", "wf-b"):
        await create_workflow(stubs, workflow_id, LINEAR)
    await create_workflow(stubs, "wf-b", {"description": "v2", **LINEAR})

    seen = []
    token = ""
    for _ in range(5):
        page = await stubs.workflows.ListWorkflows(
            W.ListWorkflowsRequest(page_size=1, page_token=token)
        )
        assert len(page.workflows) == 1
        seen.append((page.workflows[0].name, page.workflows[0].version))
        token = page.next_page_token
        if not token:
            break
    assert seen == [("workflows/wf-a", 1), ("workflows/wf-b", 2), ("workflows/wf-c", 1)]

    everything = await stubs.workflows.ListWorkflows(W.ListWorkflowsRequest())
    assert [w.name for w in everything.workflows] == [name for name, _ in seen]
    assert everything.next_page_token == ""


@pytest.mark.parametrize("token", ["not a token!", "bm90IGpzb24", "e30"])
async def test_list_workflows_rejects_a_bad_page_token(stubs: Stubs, token: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stubs.workflows.ListWorkflows(W.ListWorkflowsRequest(page_size=1, page_token=token))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in field_violations(error.value)] == ["page_token"]


async def test_delete_workflow_keeps_its_runs_readable(stubs: Stubs) -> None:
    await create_workflow(stubs, "doomed", LINEAR)
    run, _ = await run_to_end(stubs, "doomed", {"k": "v"})

    await stubs.workflows.DeleteWorkflow(W.DeleteWorkflowRequest(name="workflows/doomed"))

    for request in (
        W.GetWorkflowRequest(name="workflows/doomed"),
        W.GetWorkflowRequest(name="workflows/doomed", version=1),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await stubs.workflows.GetWorkflow(request)
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await stubs.workflows.DeleteWorkflow(W.DeleteWorkflowRequest(name="workflows/doomed"))
    assert again.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as start:
        await start_run(stubs, "doomed")
    assert start.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await stubs.workflows.ListWorkflows(W.ListWorkflowsRequest())
    assert "workflows/doomed" not in [w.name for w in listed.workflows]

    after = await get_run(stubs, run.name)
    assert after == run
    assert after.state == R.RUN_STATE_SUCCEEDED
    replay = await collect_events(stubs, run.name)
    assert replay[-1].type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED


async def test_validate_workflow_reports_levels_and_critical_path(stubs: Stubs) -> None:
    diamond = {
        "steps": [
            echo_step("join", "left", "right"),
            echo_step("left", "top"),
            echo_step("top"),
            echo_step("right", "mid"),
            echo_step("mid", "top"),
        ]
    }
    before = await stubs.workflows.ListWorkflows(W.ListWorkflowsRequest())
    plan = await stubs.workflows.ValidateWorkflow(
        W.ValidateWorkflowRequest(spec=make_spec(diamond))
    )

    levels = [sorted(level.step_ids) for level in plan.levels]
    assert levels == [["top"], ["left", "mid"], ["right"], ["join"]]
    assert list(plan.critical_path) == ["top", "mid", "right", "join"]
    after = await stubs.workflows.ListWorkflows(W.ListWorkflowsRequest())
    assert after == before
