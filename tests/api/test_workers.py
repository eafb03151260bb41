"""Workers through a real server: a Python worker (podium.worker, real gRPC
in the test's event loop) or a raw protocol session serves agents; the
server delegates their steps, governs their LLM and tool calls, enforces the
slots they advertise, leases attempts by heartbeat, rejects stale fencing
tokens, cancels, and checks their output like an in-process agent's.

Worker processes (kill -9, a server restart under them) are tests/e2e's."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import grpc
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podium.governance.policy import Policy
from podium.testing import (
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
    plain,
    run_to_end,
    serving,
    start_run,
    step_of,
    struct,
    workers_serve,
)
from podium.v1 import (
    common_pb2,
    control_service_pb2,
    event_pb2,
    execution_service_pb2,
    run_pb2,
    worker_service_pb2,
)
from podium.worker import Worker
from podium.workerhost.main import build_worker

E = event_pb2
R = run_pb2
ROOT = Path(__file__).resolve().parents[2]
W = worker_service_pb2
C = control_service_pb2


class Shout:
    """A worker agent: upper-cases `text`, reports progress, says which attempt it was."""

    name = "shout"
    description = "Upper-cases its text."
    version = "2"
    input_schema: ClassVar = {"type": "object", "required": ["text"]}
    output_schema: ClassVar = {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
    }

    def __init__(self, output: Any = None) -> None:
        self.output = output

    async def run(self, ctx: Any) -> Any:
        ctx.report(0.5, "shouting")
        if self.output is not None:
            return self.output
        return {"text": str(ctx.input["text"]).upper(), "attempt": ctx.attempt}


class Held:
    """A worker agent that runs until released or cancelled, and says which."""

    name = "held"
    description = "Holds until released."
    version = "1"

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.release = asyncio.Event()

    async def run(self, ctx: Any) -> Any:
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return {"released": True}


@contextlib.asynccontextmanager
async def working(worker: Worker) -> AsyncIterator[Worker]:
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await task


@contextlib.asynccontextmanager
async def serving_worker(
    db_path: str, agents: list[Any], **options: Any
) -> AsyncIterator[tuple[Any, Stubs]]:
    """A server, and a Python worker (in this event loop) serving `agents` to it."""
    async with (
        serving(db_path) as (server, stubs),
        working(Worker(f"127.0.0.1:{server.port}", agents, **options)),
    ):
        yield server, stubs


class RawSession:
    """A worker speaking the protocol by hand: what a buggy or stalled worker
    in another language would send."""

    def __init__(self, stubs: Stubs, opening: W.OpenSession) -> None:
        self.outbox: asyncio.Queue[W.ConnectRequest | None] = asyncio.Queue()
        self.outbox.put_nowait(W.ConnectRequest(open=opening))
        self.call = stubs.workers.Connect(self._requests())

    async def _requests(self) -> AsyncIterator[W.ConnectRequest]:
        while (message := await self.outbox.get()) is not None:
            yield message

    def send(self, message: W.ConnectRequest) -> None:
        self.outbox.put_nowait(message)

    async def receive(self) -> W.ConnectResponse:
        message = await asyncio.wait_for(self.call.read(), 60)
        assert isinstance(message, W.ConnectResponse), message
        return message

    async def receive_kind(self, kind: str) -> W.ConnectResponse:
        while True:
            message = await self.receive()
            if message.WhichOneof("message") == kind:
                return message

    def close(self) -> None:
        self.outbox.put_nowait(None)
        self.call.cancel()


def opening(agent: str = "raw", capacity: int = 1, **fields: Any) -> W.OpenSession:
    return W.OpenSession(
        identity=fields.pop("identity", "raw-worker"),
        queues=fields.pop("queues", ["default"]),
        agents=fields.pop("agents", [W.WorkerAgent(name=agent, version="1")]),
        max_concurrent_tasks=capacity,
        **fields,
    )


def complete(token: str, output: Mapping[str, Any]) -> W.ConnectRequest:
    message = W.ConnectRequest(complete=W.CompleteAttempt(attempt_token=token))
    message.complete.output.struct_value.CopyFrom(struct(output))
    return message


async def events_so_far(stubs: Stubs, run: str) -> list[event_pb2.RunEvent]:
    last = (await get_run(stubs, run)).last_sequence
    return await collect_events(stubs, run, limit=last) if last else []


# -- delegation -------------------------------------------------------------------------


async def test_a_workflow_mixes_in_process_steps_and_a_worker_step(db_path: str) -> None:
    spec = {
        "steps": [
            echo_step("first", input={"text": "input.text"}),
            {
                "id": "loud",
                "agent": "shout",
                "dependsOn": ["first"],
                "input": {"text": "steps.first.output.text"},
            },
            echo_step("last", "loud", input={"text": "steps.loud.output.text"}),
        ]
    }
    async with serving_worker(db_path, [Shout()], identity="w1") as (_, stubs):
        await workers_serve(stubs, "shout")
        await create_workflow(stubs, "mixed", spec)
        run, events = await run_to_end(stubs, "mixed", {"text": "hello"})
        agents = {a.name: a for a in (await stubs.control.ListAgents(C.ListAgentsRequest())).agents}

    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    assert plain(step_of(run, "loud").output) == {"text": "HELLO", "attempt": 1}
    assert plain(step_of(run, "last").output) == {"text": "HELLO"}
    progress = [e for e in of_type(events, E.RUN_EVENT_TYPE_STEP_PROGRESS) if e.step_id == "loud"]
    assert [(e.progress, e.message) for e in progress] == [(0.5, "shouting")]
    shout, echo = agents["shout"], agents["echo"]
    assert not shout.in_process and shout.plugin == ""
    assert shout.version == "2" and shout.description == "Upper-cases its text."
    assert [(w.queue, w.sessions, w.capacity) for w in shout.workers] == [("default", 1, 1)]
    assert plain(shout.output_schema)["required"] == ["text"]
    assert echo.in_process and not echo.workers


async def test_an_agent_served_by_a_worker_runs_there_instead_of_in_process(db_path: str) -> None:
    # The server loads `echo` too; a worker serving it on the default queue wins.
    class RemoteEcho:
        name = "echo"
        description = "echo, out of process"
        version = "9"

        async def run(self, ctx: Any) -> Any:
            return {"where": "worker", "input": ctx.input}

    async with serving_worker(db_path, [RemoteEcho()]) as (_, stubs):
        await workers_serve(stubs, "echo")
        await create_workflow(stubs, "one", {"steps": [echo_step("only", input={"a": "1"})]})
        run, _ = await run_to_end(stubs, "one")

    assert plain(step_of(run, "only").output) == {"where": "worker", "input": {"a": 1}}


async def test_a_step_no_worker_serves_waits_visibly_then_times_out(db_path: str) -> None:
    step = {"id": "lonely", "agent": "echo", "taskQueue": "nobody", "timeout": "0.3s"}
    async with serving(db_path) as (_, stubs):
        await create_workflow(stubs, "alone", {"steps": [step]})
        run, events = await run_to_end(stubs, "alone")

    waiting = of_type(events, E.RUN_EVENT_TYPE_STEP_WAITING)
    assert [e.message for e in waiting] == ["worker:nobody/echo"]
    assert run.state == R.RUN_STATE_FAILED
    failed = step_of(run, "lonely")
    assert failed.failure.type == "podium.Timeout"
    assert "no worker served agent 'echo' on queue 'nobody'" in failed.failure.message
    assert not failed.attempts  # nothing ran


async def test_a_waiting_step_starts_when_a_worker_connects(db_path: str) -> None:
    step = {"id": "later", "agent": "shout", "taskQueue": "q1", "input": {"text": "'hi'"}}
    async with serving(db_path) as (server, stubs):
        await create_workflow(stubs, "later", {"steps": [step]})
        run = await start_run(stubs, "later")

        async def waiting() -> bool:
            return step_of(await get_run(stubs, run.name), "later").reason == "worker:q1/shout"

        await eventually(waiting, what="the step waits for a worker")
        worker = Worker(f"127.0.0.1:{server.port}", [Shout()], queues=["q1"])
        async with working(worker):
            events = await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)

    assert final.state == R.RUN_STATE_SUCCEEDED
    assert plain(step_of(final, "later").output)["text"] == "HI"
    assert "resumed after worker:q1/shout" in [e.message for e in events]


async def test_a_compensation_runs_on_the_worker_serving_its_agent(db_path: str) -> None:
    spec = {
        "steps": [
            {
                "id": "book",
                "agent": "echo",
                "input": {"text": "'room 7'"},
                "compensate": {"agent": "shout", "input": {"text": "output.text"}},
            },
            {"id": "boom", "agent": "flaky", "dependsOn": ["book"], "config": {"fail_attempts": 9}},
        ]
    }
    async with serving_worker(db_path, [Shout()]) as (_, stubs):
        await workers_serve(stubs, "shout")
        await create_workflow(stubs, "saga", spec)
        run, events = await run_to_end(stubs, "saga")

    assert run.state == R.RUN_STATE_FAILED
    [undone] = of_type(events, E.RUN_EVENT_TYPE_COMPENSATION_SUCCEEDED)
    assert undone.step_id == "book"
    assert plain(undone.output) == {"text": "ROOM 7", "attempt": 0}


# -- output and input checks -----------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "needle"),
    [({"text": 42}, "is not of type 'string'"), ({"other": "x"}, "'text' is a required property")],
)
async def test_a_worker_output_violating_its_schema_fails_with_invalid_output(
    db_path: str, output: Any, needle: str
) -> None:
    retry = [{"errorEquals": ["podium.All"], "interval": "0.01s", "maxAttempts": 3}]
    step = {"id": "loud", "agent": "shout", "input": {"text": "'x'"}, "retry": retry}
    async with serving_worker(db_path, [Shout(output)]) as (_, stubs):
        await workers_serve(stubs, "shout")
        await create_workflow(stubs, "bad", {"steps": [step]})
        run, _ = await run_to_end(stubs, "bad")

    failed = step_of(run, "loud")
    assert failed.failure.type == "podium.InvalidOutput"
    assert needle in failed.failure.message
    assert not failed.failure.retryable
    assert len(failed.attempts) == 1  # not retried: the agent would do it again


async def test_a_step_input_violating_the_workers_input_schema_fails_before_it_is_sent(
    db_path: str,
) -> None:
    step = {"id": "loud", "agent": "shout", "input": {"words": "'x'"}}
    async with serving_worker(db_path, [Shout()]) as (_, stubs):
        await workers_serve(stubs, "shout")
        await create_workflow(stubs, "bad", {"steps": [step]})
        run, events = await run_to_end(stubs, "bad")

    failed = step_of(run, "loud")
    assert failed.failure.type == "podium.InvalidInput"
    assert "'text' is a required property" in failed.failure.message
    assert not [e for e in of_type(events, E.RUN_EVENT_TYPE_STEP_PROGRESS) if e.message]


# -- the session ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"queues": []}, "open.queues"),
        ({"queues": ["no spaces"]}, "open.queues[0]"),
        ({"agents": []}, "open.agents"),
        ({"agents": [W.WorkerAgent(name="Bad Name")]}, "open.agents[0].name"),
        ({"agents": [W.WorkerAgent(name="a"), W.WorkerAgent(name="a")]}, "open.agents[1].name"),
        (
            {"agents": [W.WorkerAgent(name="a", output_schema=struct({"type": "nonsense"}))]},
            "open.agents[0].output_schema",
        ),
        ({"identity": "x" * 201}, "open.identity"),
    ],
)
async def test_a_bad_session_is_invalid_argument_naming_the_field(
    db_path: str, fields: dict[str, Any], field: str
) -> None:
    capacity = fields.pop("capacity", 1)
    async with serving(db_path) as (_, stubs):
        session = RawSession(stubs, opening(capacity=capacity, **fields))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await session.receive()
        session.close()
        agents = (await stubs.control.ListAgents(C.ListAgentsRequest())).agents

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [f for f, _ in field_violations(raised.value)]
    assert not [a for a in agents if a.workers]


async def test_zero_capacity_and_a_first_message_other_than_open_are_refused(db_path: str) -> None:
    async with serving(db_path) as (_, stubs):
        session = RawSession(stubs, opening(capacity=0))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await session.receive()
        session.close()
        assert "open.max_concurrent_tasks" in [f for f, _ in field_violations(raised.value)]

        call = stubs.workers.Connect(iter([W.ConnectRequest(heartbeat=W.Heartbeat())]))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call.read()
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_governed_calls_with_a_token_of_no_running_attempt_are_failed_precondition(
    db_path: str,
) -> None:
    async with serving(db_path) as (_, stubs):
        with pytest.raises(grpc.aio.AioRpcError) as model:
            await stubs.workers.CallModel(
                W.CallModelRequest(attempt_token="forged", provider="simulated")
            )
        with pytest.raises(grpc.aio.AioRpcError) as tool:
            await stubs.workers.CallTool(W.CallToolRequest(attempt_token="", name="calculator"))

    for raised in (model, tool):
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(raised.value).reason == "ATTEMPT_NOT_RUNNING"


# -- flow control, leases, fencing, cancellation -----------------------------------------


async def test_the_server_never_sends_more_tasks_than_a_worker_advertised(db_path: str) -> None:
    step = {"id": "each", "agent": "raw", "forEach": {"items": "[1, 2, 3]"}, "input": {"i": "item"}}
    async with serving(db_path) as (_, stubs):
        session = RawSession(stubs, opening(capacity=1))
        await session.receive_kind("opened")
        await create_workflow(stubs, "three", {"steps": [step]})
        run = await start_run(stubs, "three")
        seen: list[int] = []

        # Proof that no second task is on its way: all three items hold a
        # step slot (they are past scheduling), the step waits for a worker,
        # and the session runs one attempt.
        async def others_wait() -> bool:
            status = await stubs.control.GetSystemStatus(C.GetSystemStatusRequest())
            step = step_of(await get_run(stubs, run.name), "each")
            return status.running_steps == 3 and step.reason == "worker:default/raw"

        for _ in range(3):
            task = (await session.receive_kind("task")).task
            if not seen:
                await eventually(others_wait, what="the other items wait for the worker")
            agents = (await stubs.control.ListAgents(C.ListAgentsRequest())).agents
            raw = next(a for a in agents if a.name == "raw")
            assert [(w.capacity, w.running) for w in raw.workers] == [(1, 1)]
            seen.append(int(plain(task.input)["i"]))
            session.send(complete(task.attempt_token, {"i": seen[-1]}))
        events = await collect_events(stubs, run.name)
        session.close()

    assert sorted(seen) == [1, 2, 3]
    # One wait shown for the step, however many items wait.
    waits = of_type(events, E.RUN_EVENT_TYPE_STEP_WAITING)
    assert [e.message for e in waits] == ["worker:default/raw"]
    assert events[-1].run_state == R.RUN_STATE_SUCCEEDED


async def test_a_task_carries_the_attempt_its_deadlines_and_trace_context(db_path: str) -> None:
    step = {
        "id": "traced",
        "agent": "raw",
        "input": {"n": "input.n"},
        "config": {"mode": "fast"},
        "attemptTimeout": "60s",
        "timeout": "120s",
        "heartbeatTimeout": "7s",
        "tools": ["calculator"],
    }
    async with serving(db_path) as (_, stubs):
        session = RawSession(stubs, opening())
        await session.receive_kind("opened")
        await create_workflow(stubs, "traced", {"steps": [step]})
        run = await start_run(stubs, "traced", {"n": 3})
        task = (await session.receive_kind("task")).task
        tool = await stubs.workers.CallTool(
            W.CallToolRequest(
                attempt_token=task.attempt_token,
                name="calculator",
                arguments=struct({"expression": "6 * 7"}),
            )
        )
        session.send(complete(task.attempt_token, {"ok": True}))
        events = await collect_events(stubs, run.name)
        session.close()

    assert task.run == run.name and task.workflow == "workflows/traced"
    assert (task.step_id, task.item, task.attempt, task.agent, task.queue) == (
        "traced", -1, 1, "raw", "default")  # fmt: skip
    assert plain(task.input) == {"n": 3} and plain(task.config) == {"mode": "fast"}
    assert task.heartbeat_timeout.seconds == 7
    start = task.attempt_deadline.seconds - 60
    assert task.step_deadline.seconds - start in (119, 120, 121)
    version, trace_id, span_id, flags = task.traceparent.split("-")
    assert (version, len(trace_id), len(span_id), flags) == ("00", 32, 16, "01")
    assert [t.name for t in task.tools] == ["calculator"]
    assert plain(tool.output) == 42
    types = [e.type for e in events]
    assert E.RUN_EVENT_TYPE_TOOL_CALLED in types and E.RUN_EVENT_TYPE_TOOL_RESULT in types


async def test_a_missed_heartbeat_interrupts_and_the_stale_completion_changes_nothing(
    db_path: str,
) -> None:
    step = {"id": "slow", "agent": "raw", "heartbeatTimeout": "0.2s"}
    async with serving(db_path) as (_, stubs):
        stalled = RawSession(stubs, opening(identity="stalled"))
        await stalled.receive_kind("opened")
        await create_workflow(stubs, "lease", {"steps": [step]})
        run = await start_run(stubs, "lease")
        first = (await stalled.receive_kind("task")).task
        # `stalled` never heartbeats: its lease lapses, the attempt is
        # interrupted, and the worker is told to stop.
        cancel = (await stalled.receive_kind("cancel")).cancel
        assert cancel.attempt_token == first.attempt_token
        healthy = RawSession(stubs, opening(identity="healthy"))
        await healthy.receive_kind("opened")
        # The stalled session still holds its slot (it may be running the
        # attempt): the retry goes to the healthy one.
        second = (await healthy.receive_kind("task")).task
        assert second.attempt == 2 and second.attempt_token != first.attempt_token
        # At once: the healthy session does not heartbeat either.
        healthy.send(complete(second.attempt_token, {"from": "healthy"}))
        # The first worker's late completion is rejected...
        stalled.send(complete(first.attempt_token, {"from": "stalled"}))
        rejected = (await stalled.receive_kind("rejected")).rejected
        assert rejected.attempt_token == first.attempt_token
        # ... as is its token for governed calls.
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stubs.workers.CallTool(
                W.CallToolRequest(attempt_token=first.attempt_token, name="calculator")
            )
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        events = await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
        stalled.close()
        healthy.close()

    assert final.state == R.RUN_STATE_SUCCEEDED
    done = step_of(final, "slow")
    assert plain(done.output) == {"from": "healthy"}
    assert [a.state for a in done.attempts] == [
        R.ATTEMPT_STATE_INTERRUPTED,
        R.ATTEMPT_STATE_SUCCEEDED,
    ]
    assert done.attempts[0].failure.type == "podium.Interrupted"
    assert "no heartbeat" in done.attempts[0].failure.message
    outputs = [plain(e.output) for e in of_type(events, E.RUN_EVENT_TYPE_STEP_SUCCEEDED)]
    assert outputs == [{"from": "healthy"}]


async def test_heartbeats_keep_a_long_attempt_alive(db_path: str) -> None:
    step = {"id": "long", "agent": "held", "heartbeatTimeout": "0.6s"}
    held = Held()
    async with serving_worker(db_path, [held]) as (_, stubs):
        await workers_serve(stubs, "held")
        await create_workflow(stubs, "long", {"steps": [step]})
        run = await start_run(stubs, "long")
        await held.started.wait()
        # Several heartbeat timeouts pass while the worker heartbeats.
        await asyncio.sleep(1.5)
        held.release.set()
        events = await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)

    assert final.state == R.RUN_STATE_SUCCEEDED
    assert [a.state for a in step_of(final, "long").attempts] == [R.ATTEMPT_STATE_SUCCEEDED]
    assert not held.cancelled.is_set()
    assert not of_type(events, E.RUN_EVENT_TYPE_STEP_RETRYING)


async def test_cancelling_the_run_reaches_the_worker(db_path: str) -> None:
    held = Held()
    async with serving_worker(db_path, [held]) as (_, stubs):
        await workers_serve(stubs, "held")
        await create_workflow(stubs, "cancel", {"steps": [{"id": "h", "agent": "held"}]})
        run = await start_run(stubs, "cancel")
        await held.started.wait()
        await stubs.executions.CancelRun(execution_service_pb2.CancelRunRequest(name=run.name))
        await asyncio.wait_for(held.cancelled.wait(), 60)
        await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
        # The slot came back: the worker serves the next run.
        held.release.set()
        second, _ = await run_to_end(stubs, "cancel")

    assert final.state == R.RUN_STATE_CANCELLED
    assert step_of(final, "h").state == R.STEP_STATE_CANCELLED
    assert second.state == R.RUN_STATE_SUCCEEDED


async def test_an_attempt_timeout_cancels_the_worker_and_retries(db_path: str) -> None:
    held = Held()
    step = {
        "id": "h",
        "agent": "held",
        "attemptTimeout": "0.2s",
        "retry": [{"errorEquals": ["podium.Timeout"], "interval": "0.01s", "maxAttempts": 2}],
    }
    async with serving_worker(db_path, [held], concurrency=2) as (_, stubs):
        await workers_serve(stubs, "held")
        await create_workflow(stubs, "timeout", {"steps": [step]})
        run, _ = await run_to_end(stubs, "timeout")

    assert held.cancelled.is_set()
    failed = step_of(run, "h")
    assert [a.failure.type for a in failed.attempts] == ["podium.Timeout", "podium.Timeout"]


# -- governed LLM calls -----------------------------------------------------------------


def usd(amount: str) -> common_pb2.Money:
    nanos = int(Decimal(amount) * 1_000_000_000)
    return common_pb2.Money(currency_code="USD", units=nanos // 10**9, nanos=nanos % 10**9)


async def test_a_workers_llm_calls_are_governed_like_in_process_ones(db_path: str) -> None:
    rules = Policy.model_validate(
        {
            "quotas": [
                {
                    "name": "rpm",
                    "scope": "provider:simulated",
                    "dimension": "requests",
                    "limit": 600,
                    "burst": 100,
                }
            ],
            "breakers": {"defaults": {"failure_threshold": 1}},
        }
    )

    def ask(step_id: str, **options: Any) -> dict[str, Any]:
        config = {"prompt": "Summarize the quarterly report", "max_tokens": 16, "options": options}
        return {"id": step_id, "agent": "llm", "taskQueue": "remote", "config": config}

    async with serving(db_path, policy=rules) as (server, stubs):
        worker = build_worker(
            f"127.0.0.1:{server.port}", queues=["remote"], concurrency=2, agents=["llm"]
        )
        async with working(worker):
            await workers_serve(stubs, "llm", queue="remote")
            await create_workflow(stubs, "ask", {"steps": [ask("ask")]})
            paid, paid_events = await run_to_end(stubs, "ask", max_cost=usd("1"))
            capped, capped_events = await run_to_end(stubs, "ask", max_cost=usd("0.00001"))
            quotas = (await stubs.control.ListQuotas(C.ListQuotasRequest())).quotas
            await create_workflow(
                stubs, "broken", {"steps": [ask("ask", fail_with="server_error", fail_times=1)]}
            )
            broken, broken_events = await run_to_end(stubs, "broken")
            breakers = (await stubs.control.ListBreakers(C.ListBreakersRequest())).breakers

    # Charged to the run, exactly, with the step's LLM_CALL event.
    assert paid.state == R.RUN_STATE_SUCCEEDED, paid.failure
    calls = of_type(paid_events, E.RUN_EVENT_TYPE_LLM_CALL)
    assert len(calls) == 1 and calls[0].step_id == "ask" and calls[0].provider == "simulated"
    assert money_nanos(calls[0].cost) > 0
    assert money_nanos(paid.cost) == money_nanos(calls[0].cost)
    assert money_nanos(step_of(paid, "ask").cost) == money_nanos(calls[0].cost)
    # Refused at the ceiling: the worker's agent saw the gate's refusal.
    assert capped.state == R.RUN_STATE_FAILED
    assert step_of(capped, "ask").failure.type == "podium.BudgetExceeded"
    assert not of_type(capped_events, E.RUN_EVENT_TYPE_LLM_CALL)
    assert money_nanos(capped.cost) == 0
    # Counted by the quota (one request taken from a burst of 100)...
    assert len(quotas) == 1 and quotas[0].available < 100
    # ... and by the breaker, which the provider's failure opened.
    assert step_of(broken, "ask").failure.type == "provider.server_error"
    assert of_type(broken_events, E.RUN_EVENT_TYPE_CIRCUIT_OPENED)
    board = {b.name: b for b in breakers}
    assert board["provider:simulated"].state == C.BREAKER_STATE_OPEN


STEP_STORY = (
    E.RUN_EVENT_TYPE_LLM_CALL,
    E.RUN_EVENT_TYPE_TOOL_CALLED,
    E.RUN_EVENT_TYPE_TOOL_RESULT,
    E.RUN_EVENT_TYPE_STEP_PROGRESS,
    E.RUN_EVENT_TYPE_STEP_SUCCEEDED,
)


async def test_the_react_example_on_a_worker_tells_the_same_story_as_in_process(
    db_path: str,
) -> None:
    """examples/react.yaml: a model calling tools turn after turn. On a worker,
    its LLM calls (tool calls included) and its tool calls go through the
    server; events, output and cost are those of the in-process run."""
    example = yaml.safe_load((ROOT / "examples" / "react.yaml").read_text())
    remote = copy.deepcopy(example["spec"])
    remote["steps"][0]["taskQueue"] = "remote"

    def story(events: list[event_pb2.RunEvent]) -> list[tuple[int, str, Any]]:
        # Tool arguments as values: through protobuf's Struct, a worker's
        # 45.0 arrives as 45 (JSON has one number type; Podium reads integral
        # numbers as ints), equal as numbers.
        return [
            (
                e.type,
                e.tool,
                json.loads(e.message) if e.type == E.RUN_EVENT_TYPE_TOOL_CALLED else e.message,
            )
            for e in events
            if e.type in STEP_STORY
        ]

    async with serving(db_path) as (server, stubs):
        await create_workflow(stubs, "local", example["spec"])
        local, local_events = await run_to_end(stubs, "local")
        worker = build_worker(f"127.0.0.1:{server.port}", queues=["remote"], agents=["react"])
        async with working(worker):
            await workers_serve(stubs, "react", queue="remote")
            await create_workflow(stubs, "remote", remote)
            run, events = await run_to_end(stubs, "remote")

    assert local.state == run.state == R.RUN_STATE_SUCCEEDED, run.failure
    assert story(events) == story(local_events)
    assert len(of_type(events, E.RUN_EVENT_TYPE_TOOL_CALLED)) == 2
    assert plain(run.output) == plain(local.output)
    # The cost is the remote run's own LLM calls' (the simulated provider
    # counts tokens of the text, where "45" is shorter than "45.0").
    calls = of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)
    assert len(calls) == len(of_type(local_events, E.RUN_EVENT_TYPE_LLM_CALL)) == 3
    assert money_nanos(run.cost) == sum(money_nanos(c.cost) for c in calls) > 0


async def test_a_workflow_naming_an_unknown_agent_on_a_task_queue_is_accepted(
    db_path: str,
) -> None:
    async with serving(db_path) as (_, stubs):
        await create_workflow(
            stubs, "later", {"steps": [{"id": "x", "agent": "not-yet", "taskQueue": "gpu"}]}
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await create_workflow(stubs, "never", {"steps": [{"id": "x", "agent": "not-yet"}]})
        with pytest.raises(grpc.aio.AioRpcError) as bad_queue:
            await create_workflow(
                stubs, "bad", {"steps": [{"id": "x", "agent": "a", "taskQueue": "bad queue"}]}
            )

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "spec.steps[0].task_queue" in [f for f, _ in field_violations(bad_queue.value)]


# -- hostile governed calls ---------------------------------------------------------------

ODD_NUMBERS = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**40), 2**40)
ODD_TEXT = st.sampled_from(["", "user", "assistant", "tool", "system", "x" * 300, "\x00", "ü"])
JSON = st.recursive(
    st.none() | st.booleans() | ODD_NUMBERS.map(float) | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ODD_TEXT, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def completion_requests(draw: st.DrawFn) -> W.CallModelRequest:
    request = W.CompletionRequest(
        model=draw(st.sampled_from(["sim-small", "sim-large", "", "nope"])),
        messages=[
            W.ChatMessage(role=draw(ODD_TEXT), content=draw(ODD_TEXT))
            for _ in range(draw(st.integers(0, 3)))
        ],
        stream=draw(st.booleans()),
    )
    if draw(st.booleans()):
        request.max_tokens = draw(st.integers(-(2**31), 2**31 - 1))
    if draw(st.booleans()):
        request.temperature = draw(st.floats(allow_nan=True, allow_infinity=True))
    request.options.update(draw(st.dictionaries(ODD_TEXT, JSON, max_size=3)))
    if draw(st.booleans()):
        request.response_format.update(draw(st.dictionaries(ODD_TEXT, JSON, max_size=2)))
    for _ in range(draw(st.integers(0, 2))):
        tool = request.tools.add(name=draw(ODD_TEXT), description=draw(ODD_TEXT))
        tool.parameters.update(draw(st.dictionaries(ODD_TEXT, JSON, max_size=2)))
    return W.CallModelRequest(
        provider=draw(st.sampled_from(["simulated", "", "nope"])),
        request=request,
        fallbacks=[W.ModelTarget(provider=draw(ODD_TEXT), model=draw(ODD_TEXT))]
        if draw(st.booleans())
        else [],
    )


@pytest.fixture
async def running_token(stubs: Stubs) -> AsyncIterator[str]:
    """The token of a running attempt of a raw session; the run succeeds at the end."""
    session = RawSession(stubs, opening())
    await session.receive_kind("opened")
    await create_workflow(stubs, "hostile", {"steps": [{"id": "h", "agent": "raw"}]})
    run = await start_run(stubs, "hostile")
    token = (await session.receive_kind("task")).task.attempt_token
    yield token
    session.send(complete(token, {"done": True}))
    events = await collect_events(stubs, run.name)
    session.close()
    assert events[-1].run_state == R.RUN_STATE_SUCCEEDED


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=completion_requests())
async def test_hostile_model_calls_of_a_running_attempt_get_a_failure_or_invalid_argument(
    stubs: Stubs, running_token: str, request: W.CallModelRequest
) -> None:
    """A worker's CallModel, with a valid token and anything in the request:
    OK (a completion or the failure an in-process agent would have seen) or
    INVALID_ARGUMENT naming the field; never UNKNOWN or INTERNAL."""
    request.attempt_token = running_token
    try:
        response = await stubs.workers.CallModel(request)
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert field_violations(error), error.details()
        return
    assert response.HasField("completion") != response.HasField("failure"), response
