"""A round trip through every RPC of the contract, with the generated stubs only."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from podium.server.app import PodiumServer
from podium.testing import (
    FINAL_EVENT_TYPES,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    error_info,
    eventually,
    field_violations,
    get_run,
    make_spec,
    money_nanos,
    of_type,
    run_to_end,
    sequences,
    start_run,
)
from podium.v1 import (
    control_service_pb2,
    event_pb2,
    execution_service_pb2,
    progress_service_pb2,
    run_pb2,
    workflow_service_pb2,
)

E = event_pb2
R = run_pb2
W = workflow_service_pb2
X = execution_service_pb2

LINEAR = {"steps": [echo_step("a"), echo_step("b", "a")]}
SLOW = {"steps": [echo_step("slow", delay_ms=5000)]}
LLM = {
    "steps": [
        {
            "id": "ask",
            "agent": "llm",
            "input": {"topic": "input.topic"},
            "config": {
                "provider": "simulated",
                "model": "sim-small",
                "prompt": "Write three sentences about {{ input.topic }} for a newsletter.",
            },
        },
        {
            "id": "again",
            "agent": "llm",
            "dependsOn": ["ask"],
            "input": {"prompt": "'Shorten: ' + steps.ask.output.text"},
            "config": {"provider": "simulated", "model": "sim-large"},
        },
    ]
}


# -- WorkflowService ---------------------------------------------------------------


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


# -- ExecutionService ------------------------------------------------------------


async def test_start_run_then_get_run(stubs: Stubs) -> None:
    await create_workflow(stubs, "pipeline", {**LINEAR, "labels": {"team": "a"}})
    started = await start_run(
        stubs, "pipeline", {"n": 3}, labels={"env": "test"}, max_concurrency=4
    )
    assert started.name.startswith("runs/")
    assert started.workflow == "workflows/pipeline"
    assert started.workflow_version == 1
    assert started.state in (R.RUN_STATE_PENDING, R.RUN_STATE_RUNNING)
    assert dict(started.labels) == {"team": "a", "env": "test"}
    assert started.max_concurrency == 4
    assert [s.step_id for s in started.steps] == ["a", "b"]

    await collect_events(stubs, started.name)
    run = await get_run(stubs, started.name)
    assert run.state == R.RUN_STATE_SUCCEEDED
    assert json_format.MessageToDict(run.input) == {"n": 3}
    assert [s.step_id for s in run.steps] == ["a", "b"]
    assert [s.agent for s in run.steps] == ["echo", "echo"]
    for step in run.steps:
        assert step.state == R.STEP_STATE_SUCCEEDED
        assert [a.number for a in step.attempts] == [1]
        assert step.attempts[0].state == R.ATTEMPT_STATE_SUCCEEDED
        assert step.HasField("start_time") and step.HasField("end_time")
    assert run.HasField("start_time") and run.HasField("end_time")
    assert run.end_time.ToNanoseconds() >= run.start_time.ToNanoseconds()
    # b is final: without an output mapping the run's output is {final step: output}.
    assert json_format.MessageToDict(run.output) == {"b": {}}
    assert run.last_sequence > 0


async def test_get_run_unknown_and_malformed(stubs: Stubs) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await get_run(stubs, "runs/does-not-exist")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(missing.value).reason == "RUN_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await get_run(stubs, "workflows/x")
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(malformed.value)] == ["name"]


async def test_llm_step_usage_and_cost_add_up(stubs: Stubs) -> None:
    await create_workflow(stubs, "llm-flow", LLM)
    run, events = await run_to_end(stubs, "llm-flow", {"topic": "tide pools"})

    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    calls = of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)
    assert [(c.step_id, c.provider, c.model) for c in calls] == [
        ("ask", "simulated", "sim-small"),
        ("again", "simulated", "sim-large"),
    ]
    total = sum(money_nanos(c.cost) for c in calls)
    assert total > 0
    assert money_nanos(run.cost) == total
    assert run.cost.currency_code == "USD"
    assert run.usage.calls == 2
    assert run.usage.input_tokens == sum(c.usage.input_tokens for c in calls)
    assert run.usage.output_tokens == sum(c.usage.output_tokens for c in calls)
    for step in run.steps:
        mine = [c for c in calls if c.step_id == step.step_id]
        assert money_nanos(step.cost) == sum(money_nanos(c.cost) for c in mine) > 0
        assert step.usage.calls == 1
        assert money_nanos(step.attempts[0].cost) == money_nanos(step.cost)
        assert step.attempts[0].usage == step.usage
    ask = json_format.MessageToDict(run.steps[0].output)
    assert ask["provider"] == "simulated" and ask["model"] == "sim-small"
    assert "tide pools" in ask["text"]
    final = events[-1]
    assert final.type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED
    assert money_nanos(final.cost) == total
    assert final.usage.calls == 2


async def test_list_runs_filters_and_paginates(stubs: Stubs) -> None:
    await create_workflow(stubs, "alpha", LINEAR)
    await create_workflow(stubs, "beta", {"steps": [{"id": "boom", "agent": "flaky"}]})
    alpha = [
        (await run_to_end(stubs, "alpha", {"i": i}, labels={"i": str(i), "team": "x"}))[0]
        for i in range(3)
    ]
    beta, _ = await run_to_end(stubs, "beta", labels={"team": "x"})
    assert beta.state == R.RUN_STATE_FAILED

    everything = await stubs.executions.ListRuns(X.ListRunsRequest())
    newest_first = [beta.name, *[r.name for r in reversed(alpha)]]
    assert [r.name for r in everything.runs] == newest_first
    assert everything.next_page_token == ""
    assert all(len(r.steps) == 0 for r in everything.runs)

    by_workflow = await stubs.executions.ListRuns(X.ListRunsRequest(workflow="workflows/alpha"))
    assert [r.name for r in by_workflow.runs] == [r.name for r in reversed(alpha)]

    failed = await stubs.executions.ListRuns(X.ListRunsRequest(states=[R.RUN_STATE_FAILED]))
    assert [r.name for r in failed.runs] == [beta.name]
    either = await stubs.executions.ListRuns(
        X.ListRunsRequest(states=[R.RUN_STATE_FAILED, R.RUN_STATE_SUCCEEDED])
    )
    assert len(either.runs) == 4

    labelled = await stubs.executions.ListRuns(X.ListRunsRequest(labels={"i": "1"}))
    assert [r.name for r in labelled.runs] == [alpha[1].name]
    both = await stubs.executions.ListRuns(X.ListRunsRequest(labels={"i": "1", "team": "y"}))
    assert list(both.runs) == []
    team = await stubs.executions.ListRuns(X.ListRunsRequest(labels={"team": "x"}))
    assert len(team.runs) == 4

    pages: list[str] = []
    token = ""
    while True:
        page = await stubs.executions.ListRuns(X.ListRunsRequest(page_size=1, page_token=token))
        assert len(page.runs) == 1
        pages.append(page.runs[0].name)
        token = page.next_page_token
        if not token:
            break
        assert len(pages) < 10
    assert pages == newest_first

    filtered: list[str] = []
    token = ""
    while True:
        page = await stubs.executions.ListRuns(
            X.ListRunsRequest(page_size=2, page_token=token, workflow="workflows/alpha")
        )
        filtered += [r.name for r in page.runs]
        token = page.next_page_token
        if not token:
            break
    assert filtered == [r.name for r in reversed(alpha)]

    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stubs.executions.ListRuns(X.ListRunsRequest(page_token="garbage!"))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(bad.value)] == ["page_token"]


async def test_cancel_run_cancels_the_running_step_and_is_idempotent(stubs: Stubs) -> None:
    await create_workflow(
        stubs, "slow", {"steps": [echo_step("slow", delay_ms=5000), echo_step("after", "slow")]}
    )
    run = await start_run(stubs, "slow")
    # Wait until the slow step is running.
    events = await collect_events(stubs, run.name, limit=3)
    assert events[-1].type == E.RUN_EVENT_TYPE_STEP_STARTED

    loop = asyncio.get_running_loop()
    began = loop.time()
    cancelled = (
        await stubs.executions.CancelRun(
            X.CancelRunRequest(name=run.name, reason="changed my mind")
        )
    ).run
    assert loop.time() - began < 2.0
    assert cancelled.state == R.RUN_STATE_CANCELLED
    steps = {s.step_id: s for s in cancelled.steps}
    assert steps["slow"].state == R.STEP_STATE_CANCELLED
    assert steps["slow"].attempts[-1].state == R.ATTEMPT_STATE_CANCELLED
    assert steps["after"].state == R.STEP_STATE_CANCELLED
    assert "changed my mind" in steps["after"].reason

    again = (await stubs.executions.CancelRun(X.CancelRunRequest(name=run.name))).run
    assert again.state == R.RUN_STATE_CANCELLED
    fetched = await get_run(stubs, run.name)
    assert fetched.state == R.RUN_STATE_CANCELLED
    assert {s.step_id: s.state for s in fetched.steps} == {
        "slow": R.STEP_STATE_CANCELLED,
        "after": R.STEP_STATE_CANCELLED,
    }
    replay = await collect_events(stubs, run.name)
    assert replay[-1].type == E.RUN_EVENT_TYPE_RUN_CANCELLED
    assert sequences(replay) == list(range(1, len(replay) + 1))


async def test_cancel_run_state_is_readable_as_soon_as_cancel_returns(stubs: Stubs) -> None:
    """CancelRun answered CANCELLED: a GetRun and a second CancelRun right
    after it must agree, without the client waiting for anything."""
    await create_workflow(
        stubs, "slow", {"steps": [echo_step("slow", delay_ms=5000), echo_step("after", "slow")]}
    )
    for _ in range(3):
        run = await start_run(stubs, "slow")
        await collect_events(stubs, run.name, limit=3)  # the slow step is running
        first = await stubs.executions.CancelRun(X.CancelRunRequest(name=run.name))
        assert first.run.state == R.RUN_STATE_CANCELLED
        fetched = await get_run(stubs, run.name)
        assert fetched.state == R.RUN_STATE_CANCELLED
        second = await stubs.executions.CancelRun(X.CancelRunRequest(name=run.name))
        assert second.run.state == R.RUN_STATE_CANCELLED


async def test_cancel_a_succeeded_run_is_failed_precondition(stubs: Stubs) -> None:
    await create_workflow(stubs, "quick", LINEAR)
    run, _ = await run_to_end(stubs, "quick")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stubs.executions.CancelRun(X.CancelRunRequest(name=run.name))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error.value).reason == "RUN_ALREADY_ENDED"
    assert (await get_run(stubs, run.name)).state == R.RUN_STATE_SUCCEEDED

    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stubs.executions.CancelRun(X.CancelRunRequest(name="runs/nope"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_start_run_is_idempotent_on_request_id(stubs: Stubs) -> None:
    await create_workflow(stubs, "idem", LINEAR)
    first = await start_run(stubs, "idem", {"x": 1}, request_id="req-1")
    same = await start_run(stubs, "idem", {"x": 1}, request_id="req-1")
    assert same.name == first.name
    assert same.request_id == "req-1"

    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await start_run(stubs, "idem", {"x": 99}, request_id="req-1")
    assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    info = error_info(reused.value)
    assert info.domain == "podium"
    assert info.metadata["resource"] == first.name

    listed = await stubs.executions.ListRuns(X.ListRunsRequest(workflow="workflows/idem"))
    assert [r.name for r in listed.runs] == [first.name]


async def test_concurrent_start_runs_with_one_request_id_make_one_run(stubs: Stubs) -> None:
    """Retries of one StartRun racing each other (a client retrying after a
    deadline) must all get the same run, never an internal error."""
    await create_workflow(stubs, "idem", LINEAR)
    for attempt in range(3):
        results = await asyncio.gather(
            *(start_run(stubs, "idem", {"x": 2}, request_id=f"req-{attempt}") for _ in range(5)),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, [
            (e.code(), e.details()) for e in errors if isinstance(e, grpc.aio.AioRpcError)
        ]
        assert len({r.name for r in results if not isinstance(r, BaseException)}) == 1
    listed = await stubs.executions.ListRuns(X.ListRunsRequest(workflow="workflows/idem"))
    assert len(listed.runs) == 3


async def test_a_start_run_race_does_not_lose_other_runs_events(stubs: Stubs) -> None:
    """Group commit puts every run's writes in one transaction: a StartRun
    race must not roll back the events of an unrelated run."""
    await create_workflow(stubs, "idem", LINEAR)
    await create_workflow(
        stubs, "bystander", {"steps": [echo_step(f"b{i}", delay_ms=1 + i % 4) for i in range(60)]}
    )
    bystander = await start_run(stubs, "bystander")
    for attempt in range(5):
        await asyncio.gather(
            *(start_run(stubs, "idem", request_id=f"race-{attempt}") for _ in range(5)),
            return_exceptions=True,
        )

    async def ended() -> bool:
        return (await get_run(stubs, bystander.name)).state in (
            R.RUN_STATE_SUCCEEDED,
            R.RUN_STATE_FAILED,
        )

    try:
        await eventually(ended)  # the bystander needs ~0.2 s
    except AssertionError:
        stale = await get_run(stubs, bystander.name)
        raise AssertionError(
            f"the bystander run's progress was lost: GetRun still says "
            f"{R.RunState.Name(stale.state)} with last_sequence {stale.last_sequence}"
        ) from None
    last = (await get_run(stubs, bystander.name)).last_sequence
    logged: list[event_pb2.RunEvent] = []
    with contextlib.suppress(TimeoutError):  # a log with a gap never ends the stream
        await asyncio.wait_for(_extend(stubs, bystander.name, logged), 3)
    assert sequences(logged) == list(range(1, last + 1)), "events missing from the run's log"


async def _extend(stubs: Stubs, run: str, into: list[event_pb2.RunEvent]) -> None:
    async for response in stubs.progress.WatchRun(progress_service_pb2.WatchRunRequest(run=run)):
        into.extend(response.events)


async def test_start_run_bad_input(stubs: Stubs) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await start_run(stubs, "nope")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    await create_workflow(stubs, "ok", LINEAR)
    with pytest.raises(grpc.aio.AioRpcError) as version:
        await start_run(stubs, "ok", workflow_version=7)
    assert version.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await stubs.executions.StartRun(X.StartRunRequest(workflow="ok"))
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(malformed.value)] == ["workflow"]
    with pytest.raises(grpc.aio.AioRpcError) as negative:
        await start_run(stubs, "ok", max_concurrency=-1)
    assert negative.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(negative.value)] == ["max_concurrency"]
    listed = await stubs.executions.ListRuns(X.ListRunsRequest())
    assert list(listed.runs) == []


async def test_start_run_pins_the_requested_version(stubs: Stubs) -> None:
    await create_workflow(stubs, "pinned", {"steps": [echo_step("one")]})
    await create_workflow(stubs, "pinned", {"steps": [echo_step("two")]})
    old, _ = await run_to_end(stubs, "pinned", workflow_version=1)
    new, _ = await run_to_end(stubs, "pinned")
    assert (old.workflow_version, [s.step_id for s in old.steps]) == (1, ["one"])
    assert (new.workflow_version, [s.step_id for s in new.steps]) == (2, ["two"])


# -- ProgressService ---------------------------------------------------------------


async def test_watch_run_delivers_the_whole_story(stubs: Stubs) -> None:
    await create_workflow(stubs, "story", LINEAR)
    run = await start_run(stubs, "story", {"x": 1})
    events = await collect_events(stubs, run.name)

    assert sequences(events) == list(range(1, len(events) + 1))
    assert [(e.type, e.step_id) for e in events] == [
        (E.RUN_EVENT_TYPE_RUN_CREATED, ""),
        (E.RUN_EVENT_TYPE_RUN_STARTED, ""),
        (E.RUN_EVENT_TYPE_STEP_STARTED, "a"),
        (E.RUN_EVENT_TYPE_STEP_SUCCEEDED, "a"),
        (E.RUN_EVENT_TYPE_STEP_STARTED, "b"),
        (E.RUN_EVENT_TYPE_STEP_SUCCEEDED, "b"),
        (E.RUN_EVENT_TYPE_RUN_SUCCEEDED, ""),
    ]
    assert all(e.run == run.name and e.workflow == "workflows/story" for e in events)
    assert events[2].step_state == R.STEP_STATE_RUNNING and events[2].attempt == 1
    assert events[3].step_state == R.STEP_STATE_SUCCEEDED
    assert events[-1].run_state == R.RUN_STATE_SUCCEEDED
    assert json_format.MessageToDict(events[-1].output) == {"b": {}}
    times = [e.time.ToNanoseconds() for e in events]
    assert times == sorted(times)
    assert (await get_run(stubs, run.name)).last_sequence == events[-1].sequence


async def test_watch_runs_filters_by_workflow(stubs: Stubs) -> None:
    await create_workflow(stubs, "watched", LINEAR)
    await create_workflow(stubs, "ignored", LINEAR)
    call = stubs.progress.WatchRuns(
        progress_service_pb2.WatchRunsRequest(workflows=["workflows/watched"])
    )
    await asyncio.sleep(0.05)  # let the server subscribe before anything happens
    ignored = await start_run(stubs, "ignored")
    watched = await start_run(stubs, "watched")
    await collect_events(stubs, ignored.name)

    received: list[event_pb2.RunEvent] = []

    async def read() -> None:
        async for response in call:
            received.extend(response.events)
            if any(e.type in FINAL_EVENT_TYPES for e in received):
                return

    try:
        await asyncio.wait_for(read(), 10)
    finally:
        call.cancel()
    assert received
    assert {e.run for e in received} == {watched.name}
    assert {e.workflow for e in received} == {"workflows/watched"}
    assert sequences(received) == list(range(1, len(received) + 1))


async def test_watch_runs_filters_by_event_type(stubs: Stubs) -> None:
    await create_workflow(stubs, "typed", LINEAR)
    call = stubs.progress.WatchRuns(
        progress_service_pb2.WatchRunsRequest(event_types=[E.RUN_EVENT_TYPE_STEP_SUCCEEDED])
    )
    await asyncio.sleep(0.05)
    run = await start_run(stubs, "typed")
    received: list[event_pb2.RunEvent] = []

    async def read() -> None:
        async for response in call:
            received.extend(response.events)
            if len(received) >= 2:
                return

    try:
        await asyncio.wait_for(read(), 10)
    finally:
        call.cancel()
    assert [(e.run, e.type, e.step_id) for e in received] == [
        (run.name, E.RUN_EVENT_TYPE_STEP_SUCCEEDED, "a"),
        (run.name, E.RUN_EVENT_TYPE_STEP_SUCCEEDED, "b"),
    ]


# -- ControlService, health, reflection -------------------------------------------


async def test_control_service_lists_agents_providers_plugins(stubs: Stubs) -> None:
    agents = (await stubs.control.ListAgents(control_service_pb2.ListAgentsRequest())).agents
    by_name = {a.name: a for a in agents}
    assert {"echo", "flaky", "llm", "transform"} <= set(by_name)
    assert by_name["echo"].plugin == "builtin"
    assert by_name["echo"].version and by_name["echo"].description

    providers = (
        await stubs.control.ListProviders(control_service_pb2.ListProvidersRequest())
    ).providers
    simulated = {p.name: p for p in providers}["simulated"]
    assert {"sim-small", "sim-large"} <= set(simulated.models)
    assert simulated.plugin == "builtin"

    plugins = (await stubs.control.ListPlugins(control_service_pb2.ListPluginsRequest())).plugins
    builtin = {p.name: p for p in plugins}["builtin"]
    assert builtin.status == control_service_pb2.PLUGIN_STATUS_LOADED
    assert builtin.error == ""
    assert {"echo", "flaky", "llm", "transform"} <= set(builtin.agents)
    assert "simulated" in builtin.providers


async def test_system_status_counts_active_runs(stubs: Stubs) -> None:
    idle = await stubs.control.GetSystemStatus(control_service_pb2.GetSystemStatusRequest())
    assert idle.version
    assert idle.HasField("start_time")
    assert idle.uptime.ToNanoseconds() >= 0
    assert (idle.active_runs, idle.running_steps) == (0, 0)
    assert idle.failed_plugins == 0

    await create_workflow(stubs, "busy", SLOW)
    run = await start_run(stubs, "busy")
    await collect_events(stubs, run.name, limit=3)  # the slow step started
    busy = await stubs.control.GetSystemStatus(control_service_pb2.GetSystemStatusRequest())
    assert (busy.active_runs, busy.running_steps) == (1, 1)
    assert busy.uptime.ToNanoseconds() >= idle.uptime.ToNanoseconds()

    await stubs.executions.CancelRun(X.CancelRunRequest(name=run.name))
    await collect_events(stubs, run.name)
    done = await stubs.control.GetSystemStatus(control_service_pb2.GetSystemStatusRequest())
    assert (done.active_runs, done.running_steps) == (0, 0)


@pytest.mark.parametrize("service", ["", "podium.v1.ExecutionService", "podium.v1.WorkflowService"])
async def test_health_is_serving(stubs: Stubs, service: str) -> None:
    health = stubs.health
    response = await health.Check(health_pb2.HealthCheckRequest(service=service))
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_unknown_service_is_not_found(stubs: Stubs) -> None:
    health = stubs.health
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await health.Check(health_pb2.HealthCheckRequest(service="podium.v1.Nope"))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_the_podium_services(stubs: Stubs) -> None:
    reflection: Any = reflection_pb2_grpc.ServerReflectionStub(stubs.channel)  # type: ignore[arg-type]

    async def ask(
        request: reflection_pb2.ServerReflectionRequest,
    ) -> reflection_pb2.ServerReflectionResponse:
        call = reflection.ServerReflectionInfo(iter([request]))
        responses: list[reflection_pb2.ServerReflectionResponse] = [r async for r in call]
        assert len(responses) == 1
        return responses[0]

    listed = await ask(reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in listed.list_services_response.service}
    assert {
        "podium.v1.WorkflowService",
        "podium.v1.ExecutionService",
        "podium.v1.ProgressService",
        "podium.v1.ControlService",
        "grpc.health.v1.Health",
    } <= names

    described = await ask(
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="podium.v1.ExecutionService")
    )
    assert described.file_descriptor_response.file_descriptor_proto


async def test_stopped_server_reports_not_serving(server: PodiumServer, stubs: Stubs) -> None:
    health = stubs.health
    await server.health.enter_graceful_shutdown()
    response = await health.Check(health_pb2.HealthCheckRequest(service=""))
    assert response.status == health_pb2.HealthCheckResponse.NOT_SERVING
