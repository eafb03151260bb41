"""Workers connect to any server of a cluster (`podium serve --cluster`, on
SQLite and on PostgreSQL): a real `podium worker` process connected to server B
runs the steps of runs that server A owns, through the task relay in the shared
database. The worker's agent `wlog` (worker_site/) appends what really ran, with
its process id, to a file outside the database; the servers' own logs say which
server relayed a task and which ran it. Unhappy paths: CancelRun on the owner
stops the attempt on B's worker; kill -9 of B mid-step (the worker reconnects to
A, the attempt is interrupted and retried); kill -9 of A mid-step (the new owner
adopts the relayed attempts: a step that finished on the worker while no server
owned its run is not run again, nor is one still running)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from podium.testing import (
    Cluster,
    ServerProcess,
    Stubs,
    WorkerProcess,
    collect_events,
    create_workflow,
    echo_step,
    eventually,
    get_run,
    money_nanos,
    of_type,
    plain,
    start_run,
    start_worker_process,
    step_of,
    worker_sessions,
    workers_serve,
)
from podium.v1 import (
    control_service_pb2,
    event_pb2,
    execution_service_pb2,
    progress_service_pb2,
    run_pb2,
)
from tests.e2e.test_workers import executions, wlog

E = event_pb2
R = run_pb2
ROOT = Path(__file__).resolve().parents[2]


def chain(log: Path, **config: Any) -> dict[str, Any]:
    return {
        "steps": [
            echo_step("before", input={"x": "input.x"}),
            wlog("remote", "before", log=log, **config),
            echo_step("after", "remote", input={"pid": "steps.remote.output.pid"}),
        ]
    }


def started(log: Path, run: str) -> list[tuple[int, int, str]]:
    """(attempt, pid, event) of what the worker really did for `run`."""
    return [(e["attempt"], e["pid"], e["event"]) for e in executions(log) if e["run"] == run]


def run_id(name: str) -> str:
    return name.removeprefix("runs/")


async def test_a_worker_on_b_runs_the_steps_of_runs_owned_by_a(
    cluster: Cluster,
    tmp_path: Path,
    start_worker: Callable[..., WorkerProcess],
    connect: Callable[[ServerProcess], Stubs],
) -> None:
    log = tmp_path / "executions.log"
    a, b = cluster.start("a"), cluster.start("b")
    on_a, on_b = connect(a), connect(b)
    declaring = start_worker(b.address)
    await workers_serve(on_b, "wlog")
    # A learns the agent B's worker declares (its schemas check A's workflows).
    await eventually(
        lambda: creates(on_a, "relayed", chain(log)), what="A accepts a workflow naming wlog"
    )
    fan = {
        "steps": [
            {
                "id": "each",
                "agent": "wlog",
                "forEach": {"items": "input.items"},
                "input": {"x": "item"},
                "config": {"log": str(log)},
            }
        ]
    }
    await create_workflow(on_a, "fan", fan)
    declaring.stop()
    await eventually(lambda: no_sessions(on_b), what="B's worker disconnects")
    # A must see that too before the run starts: were B's presence still
    # published, A would relay the step at once, withdraw it when B's offer
    # lapsed, and its first attempt would end interrupted.
    await eventually(lambda: served_on(on_a, "wlog", []), what="A sees no worker for wlog")
    # Started while no worker is connected anywhere: the step waits for one,
    # and is relayed as soon as B says it has one.
    first = await start_run(on_a, "relayed", {"x": 1})
    await eventually(lambda: step_waits(on_a, first.name, "remote"), what="the step waits")
    worker = start_worker(b.address, "--concurrency", "2")
    await workers_serve(on_b, "wlog")
    # Presence is cluster-wide: A lists the agent as served by B's workers.
    await eventually(
        lambda: served_on(on_a, "wlog", [("default", 0, ["b"])]),
        what="A lists wlog as served by B",
    )
    listed = a.cli("agents", "--address", a.address)
    assert listed.returncode == 0, listed.stderr
    [row] = [line for line in listed.stdout.splitlines() if "wlog" in line]
    assert "workers of server(s) b on default" in row
    second = await start_run(on_a, "relayed", {"x": 2})
    fanned = await start_run(on_a, "fan", {"items": [10, 11, 12]})

    finals = {}
    for run in (first, second, fanned):
        await collect_events(on_a, run.name)
        finals[run.name] = await get_run(on_a, run.name)

    for run in (first, second):
        final = finals[run.name]
        assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
        remote = step_of(final, "remote")
        assert [a.state for a in remote.attempts] == [R.ATTEMPT_STATE_SUCCEEDED]
        assert plain(step_of(final, "after").output) == {"pid": worker.pid}
        # What really ran, by the worker's own log: once, in the worker process.
        assert started(log, run_id(run.name)) == [(1, worker.pid, "start"), (1, worker.pid, "end")]
    final = finals[fanned.name]
    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    assert [item["input"]["x"] for item in plain(step_of(final, "each").output)] == [10, 11, 12]
    assert sorted(e["item"] for e in executions(log) if e["run"] == run_id(fanned.name)) == [
        0,
        0,
        1,
        1,
        2,
        2,
    ]
    # A owns the runs and relayed their steps; B ran them on its worker.
    for run in (first, second):
        assert f"run {run_id(run.name)} step 'remote' attempt 1 relayed" in a.log_text()
        assert f"(run {run_id(run.name)} step 'remote' attempt 1)" in b.log_text()
    assert "relay: running task" not in a.log_text()
    # The relay leaves nothing behind once the runs ended.
    assert (await get_run(on_b, first.name)).state == R.RUN_STATE_SUCCEEDED


async def test_a_relayed_attempt_s_model_calls_are_governed_and_recorded_by_the_owner(
    cluster: Cluster,
    tmp_path: Path,
    connect: Callable[[ServerProcess], Stubs],
) -> None:
    """The builtin `llm` agent on a worker connected to B, queue "finance": its
    CallModel reaches B, which relays it to A (the run's owner), whose gate runs
    it: the LLM_CALL event and the cost are the run's, as for a local worker."""
    a, b = cluster.start("a"), cluster.start("b")
    on_a, on_b = connect(a), connect(b)
    worker = start_worker_process(
        b.address,
        log_dir=tmp_path,
        args=["--queue", "finance", "--agent", "llm", "--concurrency", "2"],
        env={"PODIUM_PLUGINS": "none"},
        cwd=ROOT,
    )
    try:
        await workers_serve(on_b, "llm", queue="finance")
        step = {
            "id": "invoice",
            "agent": "llm",
            "taskQueue": "finance",
            "input": {"amount": "input.amount"},
            "config": {
                "model": "sim-small",
                "max_tokens": 50,
                "options": {"latency_ms": 0},
                "prompt": "Write an invoice for {{ input.amount }} EUR.",
            },
        }
        await create_workflow(on_a, "billing", {"steps": [step, echo_step("after", "invoice")]})
        run = await start_run(on_a, "billing", {"amount": 120})
        events = await collect_events(on_a, run.name)
        final = await get_run(on_a, run.name)
    finally:
        worker.stop()

    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    [call] = of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)
    assert call.step_id == "invoice"
    assert money_nanos(call.cost) == money_nanos(final.cost) > 0
    assert money_nanos(step_of(final, "invoice").cost) == money_nanos(final.cost)
    assert f"{run.name}/invoice attempt 1 (llm): succeeded" in worker.log_text()
    assert f"(run {run_id(run.name)} step 'invoice' attempt 1)" in b.log_text()
    assert f"run {run_id(run.name)} step 'invoice' attempt 1 relayed" in a.log_text()


async def test_cancel_run_on_the_owner_reaches_the_worker_on_another_server(
    cluster: Cluster,
    tmp_path: Path,
    start_worker: Callable[..., WorkerProcess],
    connect: Callable[[ServerProcess], Stubs],
) -> None:
    log, release = tmp_path / "executions.log", tmp_path / "release"
    a, b = cluster.start("a"), cluster.start("b")
    on_a, on_b = connect(a), connect(b)
    worker = start_worker(b.address)
    await workers_serve(on_b, "wlog")
    await eventually(
        lambda: creates(on_a, "held", chain(log, release=str(release))),
        what="A accepts a workflow naming wlog",
    )
    run = await start_run(on_a, "held", {"x": 1})
    seen: list[event_pb2.RunEvent] = []
    watch = asyncio.ensure_future(watch_into(on_a, run.name, seen))
    await eventually(
        lambda: started(log, run_id(run.name)) == [(1, worker.pid, "start")],
        what="the worker on B starts the step",
    )
    # The worker's progress report ("holding") reaches the owner's event log.
    await eventually(
        lambda: "holding" in [e.message for e in of_type(seen, E.RUN_EVENT_TYPE_STEP_PROGRESS)],
        what="the relayed progress report",
    )

    await on_a.executions.CancelRun(
        execution_service_pb2.CancelRunRequest(name=run.name, reason="enough")
    )

    await eventually(
        lambda: (
            started(log, run_id(run.name))
            == [(1, worker.pid, "start"), (1, worker.pid, "cancelled")]
        ),
        what="the worker on B is told to stop the attempt",
    )
    final = await get_run(on_a, run.name)
    assert final.state == R.RUN_STATE_CANCELLED
    await asyncio.wait_for(watch, 60)
    assert seen[-1].type == E.RUN_EVENT_TYPE_RUN_CANCELLED
    assert [a.state for a in step_of(final, "remote").attempts] == [R.ATTEMPT_STATE_CANCELLED]
    # The worker's slot is free again: a new run's step runs there.
    release.touch()
    again = await start_run(on_a, "held", {"x": 2})
    await collect_events(on_a, again.name)
    assert (await get_run(on_a, again.name)).state == R.RUN_STATE_SUCCEEDED
    assert started(log, run_id(again.name)) == [(1, worker.pid, "start"), (1, worker.pid, "end")]


async def test_kill_9_of_the_server_holding_the_worker_retries_the_attempt(
    cluster: Cluster,
    tmp_path: Path,
    start_worker: Callable[..., WorkerProcess],
    connect: Callable[[ServerProcess], Stubs],
) -> None:
    log, release = tmp_path / "executions.log", tmp_path / "release"
    a, b = cluster.start("a"), cluster.start("b")
    on_a, on_b = connect(a), connect(b)
    # One worker given both servers (a gRPC target with two addresses, B first):
    # when B dies it reconnects to A.
    worker = start_worker(f"ipv4:{b.address},{a.address}")
    await workers_serve(on_b, "wlog")
    assert "wlog" not in {agent.name for agent in (await list_agents(on_a))}
    await eventually(
        lambda: creates(on_a, "held", chain(log, release=str(release))),
        what="A accepts a workflow naming wlog",
    )
    run = await start_run(on_a, "held", {"x": 1})
    await eventually(
        lambda: started(log, run_id(run.name)) == [(1, worker.pid, "start")],
        what="the worker on B starts the step",
    )

    assert b.kill() < 0  # SIGKILL: B's lease lapses, its worker session breaks

    await eventually(
        lambda: (2, worker.pid, "start") in started(log, run_id(run.name)),
        what="the retry runs on the worker, reconnected to A",
    )
    release.touch()
    await collect_events(on_a, run.name)
    final = await get_run(on_a, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    remote = step_of(final, "remote")
    assert [a.state for a in remote.attempts] == [
        R.ATTEMPT_STATE_INTERRUPTED,
        R.ATTEMPT_STATE_SUCCEEDED,
    ]
    assert remote.attempts[0].failure.type == "podium.Interrupted"
    assert plain(remote.output)["pid"] == worker.pid
    # Attempt 1 was stopped when its session broke; attempt 2 ran to its end, once.
    assert started(log, run_id(run.name)) == [
        (1, worker.pid, "start"),
        (1, worker.pid, "cancelled"),
        (2, worker.pid, "start"),
        (2, worker.pid, "end"),
    ]


async def test_kill_9_of_the_owner_its_relayed_attempts_are_adopted_not_run_again(
    cluster: Cluster,
    tmp_path: Path,
    start_worker: Callable[..., WorkerProcess],
    connect: Callable[[ServerProcess], Stubs],
) -> None:
    log = tmp_path / "executions.log"
    early, late = tmp_path / "release-early", tmp_path / "release-late"
    a, b = cluster.start("a"), cluster.start("b")
    on_a, on_b = connect(a), connect(b)
    worker = start_worker(b.address, "--concurrency", "2")
    await workers_serve(on_b, "wlog")
    await eventually(
        lambda: creates(on_a, "early", chain(log, release=str(early))),
        what="A accepts a workflow naming wlog",
    )
    await create_workflow(on_a, "late", chain(log, release=str(late)))
    finishing = await start_run(on_a, "early", {"x": 1})
    running = await start_run(on_a, "late", {"x": 2})
    await eventually(
        lambda: all(
            started(log, run_id(run.name)) == [(1, worker.pid, "start")]
            for run in (finishing, running)
        ),
        what="the worker on B runs both steps",
    )

    assert a.kill() < 0  # SIGKILL of the owner, both attempts in flight on B's worker
    # One step finishes while no server owns its run (A dead, not taken over yet).
    early.touch()
    await eventually(
        lambda: (1, worker.pid, "end") in started(log, run_id(finishing.name)),
        what="the step finishes on the worker while its owner is dead",
    )
    # B takes the runs over; the other step finishes after that.
    await eventually(
        lambda: "cluster: taking over" in b.log_text(),
        what="B takes A's runs over",
    )
    late.touch()

    for run in (finishing, running):
        await collect_events(on_b, run.name)
        final = await get_run(on_b, run.name)
        assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
        remote = step_of(final, "remote")
        # The attempt in flight at the kill is the one recorded: not interrupted, not re-run.
        assert [a.state for a in remote.attempts] == [R.ATTEMPT_STATE_SUCCEEDED]
        assert plain(remote.output)["pid"] == worker.pid
        assert started(log, run_id(run.name)) == [(1, worker.pid, "start"), (1, worker.pid, "end")]
        events = await collect_events(on_b, run.name)
        assert len(of_type(events, E.RUN_EVENT_TYPE_STEP_STARTED)) == 3
        assert not of_type(events, E.RUN_EVENT_TYPE_STEP_FAILED)
    assert "relayed attempts of runs taken over" in b.log_text()


async def watch_into(stubs: Stubs, name: str, seen: list[event_pb2.RunEvent]) -> None:
    """Appends the run's events to `seen` as they come, until the run ends."""
    call = stubs.progress.WatchRun(progress_service_pb2.WatchRunRequest(run=name))
    async for response in call:
        seen.extend(response.events)


async def creates(stubs: Stubs, workflow_id: str, spec: dict[str, Any]) -> bool:
    try:
        await create_workflow(stubs, workflow_id, spec)
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
        return False
    return True


async def no_sessions(stubs: Stubs) -> bool:
    return await worker_sessions(stubs, "wlog") == 0


async def step_waits(stubs: Stubs, name: str, step_id: str) -> bool:
    step = step_of(await get_run(stubs, name), step_id)
    return step.state == R.STEP_STATE_WAITING and "worker:default/wlog" in step.reason


async def served_on(stubs: Stubs, agent: str, expected: list[tuple[str, int, list[str]]]) -> bool:
    """Whether ListAgents shows `agent` served as `expected`: (queue, this server's
    sessions, other servers)."""
    response = await stubs.control.ListAgents(control_service_pb2.ListAgentsRequest())
    for info in response.agents:
        if info.name == agent:
            return [(w.queue, w.sessions, list(w.other_servers)) for w in info.workers] == expected
    return False


async def list_agents(stubs: Stubs) -> list[Any]:
    """The agents some worker connected to this server serves."""
    response = await stubs.control.ListAgents(control_service_pb2.ListAgentsRequest())
    return [agent for agent in response.agents if any(w.sessions for w in agent.workers)]
