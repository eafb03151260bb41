"""ExecutionService through a real server, with the generated stubs only:
starting, reading, listing and cancelling runs, idempotent StartRun."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest
from google.protobuf import json_format

from podium.testing import (
    FOREVER_MS,
    HANG_TIMEOUT,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    error_info,
    eventually,
    field_violations,
    get_run,
    money_nanos,
    of_type,
    run_to_end,
    sequences,
    start_run,
)
from podium.v1 import (
    event_pb2,
    execution_service_pb2,
    progress_service_pb2,
    run_pb2,
)

E = event_pb2
R = run_pb2
X = execution_service_pb2

LINEAR = {"steps": [echo_step("a"), echo_step("b", "a")]}
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
    # A step only the cancellation can end: a CancelRun that waited for it would never return.
    await create_workflow(
        stubs,
        "slow",
        {"steps": [echo_step("slow", delay_ms=FOREVER_MS), echo_step("after", "slow")]},
    )
    run = await start_run(stubs, "slow")
    # Wait until the slow step is running.
    events = await collect_events(stubs, run.name, limit=3)
    assert events[-1].type == E.RUN_EVENT_TYPE_STEP_STARTED

    cancelled = (
        await stubs.executions.CancelRun(
            X.CancelRunRequest(name=run.name, reason="changed my mind")
        )
    ).run
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
        stubs,
        "slow",
        {"steps": [echo_step("slow", delay_ms=FOREVER_MS), echo_step("after", "slow")]},
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
        await asyncio.wait_for(_extend(stubs, bystander.name, logged), HANG_TIMEOUT)
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
