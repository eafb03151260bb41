"""The Node worker library (clients/node) against a real server: a Node worker process serves
agents written in TypeScript, in workflows mixed with in-process agents.

The worker is clients/node/test/serve.ts, built by `make node` (which `make test` runs first):
the example agent (examples/draft_reply.ts) plus agents that make flow control, cancellation
and failures observable. It prints one JSON record per line of what its agents saw."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from podium.identity.principal import Role
from podium.server.security import SecurityConfig
from podium.testing import (
    HANG_TIMEOUT,
    InProcessServer,
    ServerProcess,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    eventually,
    get_run,
    money_nanos,
    of_type,
    plain,
    run_to_end,
    serving,
    start_run,
    start_server_process_async,
    start_worker_process,
    step_of,
    workers_serve,
)
from podium.testing.identity import new_token, stubs_for
from podium.v1 import control_service_pb2, event_pb2, execution_service_pb2, run_pb2

E = event_pb2
R = run_pb2
NODE = Path(__file__).resolve().parents[2] / "clients" / "node"
SERVE = NODE / "dist" / "test" / "serve.js"


def _built() -> None:
    sources = [p for d in ("src", "examples", "test") for p in (NODE / d).rglob("*.ts")]
    assert SERVE.exists(), "the Node worker is not built: run `make node`"
    newest = max(p.stat().st_mtime for p in sources)
    assert SERVE.stat().st_mtime >= newest - 1, (
        "the Node worker is older than its sources: `make node`"
    )


class NodeWorker:
    """A running `node dist/test/serve.js` and the records it printed."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.records: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.records.append(json.loads(line))

    def seen(self, event: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["event"] == event]

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), HANG_TIMEOUT)
        except TimeoutError:
            self.process.kill()
            code = await self.process.wait()
        await self._reader
        return code

    def sessions_opened(self) -> int:
        return sum("opened" in r.get("line", "") for r in self.seen("log"))


@contextlib.asynccontextmanager
async def node_worker(
    server: InProcessServer | ServerProcess,
    concurrency: int = 1,
    token: str | None = None,
    opens: bool = True,
) -> AsyncIterator[NodeWorker]:
    _built()
    address = (
        server.address if isinstance(server, ServerProcess) else f"127.0.0.1:{server.server.port}"
    )
    process = await asyncio.create_subprocess_exec(
        "node",
        str(SERVE),
        "--address",
        address,
        "--concurrency",
        str(concurrency),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PODIUM_TOKEN": token or ""},
    )
    worker = NodeWorker(process)
    try:
        if opens:
            await eventually(
                lambda: worker.sessions_opened() > 0, what="the Node worker's session to open"
            )
        yield worker
    finally:
        await worker.stop()


ORDER = {
    "steps": [
        # In-process agents before and after the Node one.
        echo_step("order", input={"customer": "input.customer", "total": "input.total"}),
        {
            "id": "draft",
            "agent": "node-draft-reply",
            "dependsOn": ["order"],
            "input": {
                "customer": "steps.order.output.customer",
                "total": "steps.order.output.total",
            },
        },
        echo_step(
            "send", "draft", input={"to": "input.customer", "text": "steps.draft.output.reply"}
        ),
    ]
}


async def test_a_node_agent_runs_in_a_workflow_with_in_process_agents(
    in_process_server: InProcessServer,
) -> None:
    stubs = in_process_server.stubs
    async with node_worker(in_process_server) as worker:
        listed = await stubs.control.ListAgents(control_service_pb2.ListAgentsRequest())
        agents = {a.name: a for a in listed.agents}
        assert agents["echo"].in_process
        remote = agents["node-draft-reply"]
        assert not remote.in_process
        assert [(w.queue, w.sessions) for w in remote.workers] == [("default", 1)]

        await create_workflow(stubs, "order", ORDER)
        run, events = await run_to_end(stubs, "order", {"customer": "Ada", "total": 42.5})
        assert worker.process.returncode is None

    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    draft = plain(step_of(run, "draft").output)
    assert draft["model"] == "sim-small"
    assert "Confirm Ada's order of 42.5 USD." in draft["reply"]
    assert plain(run.output) == {"send": {"to": "Ada", "text": draft["reply"]}}
    # The Node agent's progress and its governed LLM call, attributed to its step and charged
    # to the run.
    progress = [(e.step_id, e.message) for e in of_type(events, E.RUN_EVENT_TYPE_STEP_PROGRESS)]
    assert progress[0] == ("draft", "asking the model")
    assert progress[1][1].startswith("drafted for 0.0")
    calls = of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)
    assert [(c.step_id, c.provider, c.model) for c in calls] == [
        ("draft", "simulated", "sim-small")
    ]
    assert money_nanos(calls[0].cost) > 0
    assert money_nanos(run.cost) == money_nanos(calls[0].cost)
    assert progress[1][1] == f"drafted for {_decimal(money_nanos(calls[0].cost))} USD"


def _decimal(nanos: int) -> str:
    units, fraction = divmod(nanos, 1_000_000_000)
    digits = f"{fraction:09d}".rstrip("0")
    return f"{units}.{digits}" if digits else str(units)


async def test_the_node_worker_never_runs_more_attempts_than_it_advertised(
    in_process_server: InProcessServer,
) -> None:
    stubs = in_process_server.stubs
    # (A workflow may name a remote agent once a worker has declared it.)
    async with node_worker(in_process_server, concurrency=2) as worker:
        await create_workflow(
            stubs,
            "fan",
            {
                "steps": [
                    {
                        "id": "each",
                        "agent": "node-hold",
                        "config": {"ms": 200},
                        "forEach": {"items": "[1, 2, 3, 4, 5, 6, 7]"},
                    }
                ]
            },
        )
        run, _ = await run_to_end(stubs, "fan")
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    assert sorted(item["item"] for item in plain(step_of(run, "each").output)) == list(range(7))
    started = worker.seen("started")
    assert len(started) == 7
    assert max(r["running"] for r in started) <= 2


async def test_cancelling_a_run_reaches_the_node_agent_and_frees_its_slot(
    in_process_server: InProcessServer,
) -> None:
    stubs = in_process_server.stubs
    async with node_worker(in_process_server, concurrency=1) as worker:
        await create_workflow(stubs, "held", {"steps": [{"id": "wait", "agent": "node-hold"}]})
        await create_workflow(stubs, "order", ORDER)
        held = await start_run(stubs, "held")
        await eventually(lambda: bool(worker.seen("started")), what="the Node agent to start")
        await stubs.executions.CancelRun(execution_service_pb2.CancelRunRequest(name=held.name))
        await collect_events(stubs, held.name)
        await eventually(lambda: bool(worker.seen("aborted")), what="the cancel to reach Node")
        # Its only slot is free again: the next run's Node step runs.
        after, _ = await run_to_end(stubs, "order", {"customer": "Bo", "total": 1})
    assert (await get_run(stubs, held.name)).state == R.RUN_STATE_CANCELLED
    assert worker.seen("aborted")[0]["step"] == "wait"
    assert after.state == R.RUN_STATE_SUCCEEDED, after.failure


@pytest.mark.parametrize(
    ("step", "failure_type", "retryable", "attempts"),
    [
        # An AgentError chooses its type and whether a retry could help.
        (
            {"agent": "node-fail", "config": {"type": "erp.Rejected", "retryable": False}},
            "erp.Rejected",
            False,
            1,
        ),
        # Any other error is retryable, typed by its class: the retry policy applies.
        ({"agent": "node-fail", "config": {"plain": True}}, "RangeError", True, 2),
        # The server checks a worker's output against the agent's declared schema.
        ({"agent": "node-bad-output"}, "podium.InvalidOutput", False, 1),
    ],
)
async def test_a_node_agent_failure_fails_its_step_as_an_in_process_one_would(
    in_process_server: InProcessServer,
    step: dict[str, Any],
    failure_type: str,
    retryable: bool,
    attempts: int,
) -> None:
    stubs = in_process_server.stubs
    retry = [{"errorEquals": ["podium.All"], "interval": "0.01s", "maxAttempts": 2}]
    async with node_worker(in_process_server):
        await create_workflow(stubs, "failing", {"steps": [{"id": "s", "retry": retry, **step}]})
        run, _ = await run_to_end(stubs, "failing")
    assert run.state == R.RUN_STATE_FAILED
    failed = step_of(run, "s")
    assert (failed.failure.type, failed.failure.retryable) == (failure_type, retryable)
    assert len(failed.attempts) == attempts


async def test_the_node_worker_heartbeats_attempts_longer_than_their_lease(
    in_process_server: InProcessServer,
) -> None:
    # A lease of 2 s and an attempt of 3 s: only the worker's heartbeats (every third of the
    # lease) keep it from being INTERRUPTED.
    stubs = in_process_server.stubs
    step = {"id": "long", "agent": "node-hold", "config": {"ms": 3000}, "heartbeatTimeout": "2s"}
    async with node_worker(in_process_server):
        await create_workflow(stubs, "long", {"steps": [step]})
        run, _ = await run_to_end(stubs, "long")
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    assert len(step_of(run, "long").attempts) == 1


async def test_the_node_worker_reconnects_after_a_server_crash_and_its_run_finishes(
    tmp_path: Path,
) -> None:
    db = tmp_path / "podium.db"
    server = await start_server_process_async(db, cwd=NODE.parents[1])
    try:
        async with node_worker(server) as worker:
            async with grpc.aio.insecure_channel(server.address) as channel:
                stubs = Stubs.on(channel)
                step = {"id": "hold", "agent": "node-hold", "config": {"ms": 1000}}
                await create_workflow(stubs, "held", {"steps": [step]})
                run = await start_run(stubs, "held")
                await eventually(lambda: bool(worker.seen("started")), what="the attempt to start")
            server.kill()  # kill -9 while the Node attempt runs
            server = await start_server_process_async(db, cwd=NODE.parents[1], ports=[server.port])
            async with grpc.aio.insecure_channel(server.address) as channel:
                stubs = Stubs.on(channel)
                await workers_serve(stubs, "node-hold")  # the same process, reconnected
                await collect_events(stubs, run.name)
                final = await get_run(stubs, run.name)
            assert worker.process.returncode is None
            assert worker.sessions_opened() == 2
    finally:
        server.kill()
    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    # The attempt in flight at the crash is INTERRUPTED and runs again (at least once); its
    # agent in Node was told when its session died.
    assert [a.state for a in step_of(final, "hold").attempts] == [
        R.ATTEMPT_STATE_INTERRUPTED,
        R.ATTEMPT_STATE_SUCCEEDED,
    ]
    assert [r["reason"] for r in worker.seen("aborted")] == ["the session ended"]
    assert len(worker.seen("started")) == 2


async def test_a_node_worker_authenticates_with_a_worker_token(db_path: str) -> None:
    async with serving(db_path, security=SecurityConfig(auth=True)) as served:
        developer = await new_token(served.server, Role.DEVELOPER)
        worker_token = await new_token(served.server, Role.WORKER)
        # Without a token the session is refused and the worker stops: no retry loop.
        async with node_worker(served, opens=False) as refused:
            code = await asyncio.wait_for(refused.process.wait(), HANG_TIMEOUT)
        assert code != 0
        async with (
            node_worker(served, token=worker_token) as worker,
            stubs_for(served.address, developer) as stubs,
        ):
            await workers_serve(stubs, "node-draft-reply")
            await create_workflow(stubs, "order", ORDER)
            run, _ = await run_to_end(stubs, "order", {"customer": "Ada", "total": 42.5})
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    assert worker.sessions_opened() == 1


WORKER_SITE = Path(__file__).resolve().parent / "worker_site"

POLYGLOT = {
    "steps": [
        echo_step("order", input={"customer": "input.customer", "total": "input.total"}),
        {
            # A Python agent in a `podium worker` process.
            "id": "ledger",
            "agent": "wlog",
            "dependsOn": ["order"],
            "config": {"log": "input.log"},
            "input": {"total": "steps.order.output.total"},
        },
        {
            # A TypeScript agent in a Node worker process.
            "id": "draft",
            "agent": "node-draft-reply",
            "dependsOn": ["order"],
            "input": {
                "customer": "steps.order.output.customer",
                "total": "steps.order.output.total",
            },
        },
        echo_step(
            "send",
            "ledger",
            "draft",
            input={"text": "steps.draft.output.reply", "booked": "steps.ledger.output.input.total"},
        ),
    ]
}


async def test_a_python_worker_and_a_node_worker_serve_one_workflow(
    in_process_server: InProcessServer, tmp_path: Path
) -> None:
    stubs = in_process_server.stubs
    log = tmp_path / "executions.jsonl"
    spec = json.loads(json.dumps(POLYGLOT).replace('"input.log"', json.dumps(str(log))))
    python_worker = start_worker_process(
        in_process_server.address,
        log_dir=tmp_path,
        args=["--agent", "wlog"],
        env={"PYTHONPATH": str(WORKER_SITE), "PODIUM_PLUGINS": "worker_agents"},
    )
    try:
        async with node_worker(in_process_server):
            await workers_serve(stubs, "wlog")
            await workers_serve(stubs, "node-draft-reply")
            await create_workflow(stubs, "polyglot", spec)
            run, _ = await run_to_end(stubs, "polyglot", {"customer": "Ada", "total": 42.5})
    finally:
        python_worker.stop()
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    ledger = plain(step_of(run, "ledger").output)
    assert ledger["input"] == {"total": 42.5} and ledger["pid"] != os.getpid()
    draft = plain(step_of(run, "draft").output)
    assert "Confirm Ada's order of 42.5 USD." in draft["reply"]
    assert plain(step_of(run, "send").output)["booked"] == 42.5
    executed = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["step"], e["event"]) for e in executed] == [("ledger", "start"), ("ledger", "end")]
