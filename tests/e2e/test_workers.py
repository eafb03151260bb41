"""Real `podium worker` processes serving a real `podium serve` process: the
agent `wlog` (worker_site/, installed beside the workers only) logs every
execution to a file outside Podium's database, so that what really ran is
checked against what the server recorded, across kill -9 of a worker and of
the server."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format

from podium.testing import (
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
    start_server_process,
    start_worker_process,
    step_of,
    worker_sessions,
    workers_serve,
)
from podium.v1 import control_service_pb2, event_pb2, run_pb2, workflow_service_pb2

E = event_pb2
R = run_pb2
StartServing = Callable[..., ServerProcess]
ROOT = Path(__file__).resolve().parents[2]


def executions(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def wlog(step_id: str, *depends_on: str, log: Path, **config: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "agent": "wlog",
        "dependsOn": list(depends_on),
        "input": {"x": "input.x"},
        "config": {"log": str(log), **config},
    }


async def test_the_erp_workflow_with_its_finance_steps_on_a_worker_process(
    tmp_path: Path,
    start_serving: StartServing,
    connect: Callable[[ServerProcess], Stubs],
) -> None:
    """examples/erp.yaml, its finance department (invoice, payment,
    reconcile) on queue "finance", served by a worker process running the
    builtin `llm` agent; the other nine steps in-process. The worker's LLM
    calls go through the server's gate: their LLM_CALL events and cost count
    in the run like the others'."""
    document = yaml.safe_load((ROOT / "examples" / "erp.yaml").read_text())
    finance = {"invoice", "payment", "reconcile"}
    for step in document["spec"]["steps"]:
        step["config"]["options"] = {"latency_ms": 0}
        if step["id"] in finance:
            step["task_queue"] = "finance"
    server = start_serving()
    stubs = connect(server)
    worker = start_worker_process(
        server.address,
        log_dir=tmp_path,
        args=["--queue", "finance", "--agent", "llm", "--concurrency", "3"],
        env={"PODIUM_PLUGINS": "none"},
        cwd=ROOT,
    )
    try:
        await workers_serve(stubs, "llm", queue="finance")
        request = json_format.ParseDict(document, workflow_service_pb2.CreateWorkflowRequest())
        await stubs.workflows.CreateWorkflow(request)
        erp_input = json.loads((ROOT / "examples" / "erp-input.json").read_text())
        run = await start_run(stubs, "erp", erp_input)
        events = await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
    finally:
        worker.stop()

    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    calls = of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)
    assert sorted(e.step_id for e in calls) == sorted(s["id"] for s in document["spec"]["steps"])
    assert sum(money_nanos(e.cost) for e in calls) == money_nanos(final.cost) > 0
    for step_id in finance:  # ran on the worker, and only there
        assert f"{run.name}/{step_id} attempt 1 (llm): succeeded" in worker.log_text()
        assert money_nanos(step_of(final, step_id).cost) > 0
    assert "resume_parse" not in worker.log_text()


async def test_a_worker_killed_mid_attempt_is_interrupted_and_retried_on_another(
    tmp_path: Path,
    start_serving: StartServing,
    start_worker: Callable[..., WorkerProcess],
    connect: Callable[[ServerProcess], Stubs],
) -> None:
    log, release = tmp_path / "executions.log", tmp_path / "release"
    server = start_serving()
    stubs = connect(server)
    first = start_worker(server.address)
    await workers_serve(stubs, "wlog")
    spec = {
        "steps": [
            echo_step("before", input={"x": "input.x"}),
            wlog("remote", "before", log=log, release=str(release)),
            echo_step("after", "remote", input={"pid": "steps.remote.output.pid"}),
        ]
    }
    await create_workflow(stubs, "mixed", spec)
    run = await start_run(stubs, "mixed", {"x": 1})
    await eventually(lambda: len(executions(log)) == 1, what="the first worker runs the step")
    second = start_worker(server.address)
    await workers_serve(stubs, "wlog", sessions=2)
    assert first.kill() < 0  # SIGKILL: no goodbye, no completion

    def on_second() -> bool:
        return [e["pid"] for e in executions(log) if e["event"] == "start"] == [
            first.pid,
            second.pid,
        ]

    await eventually(on_second, what="the retry runs on the second worker")
    release.touch()
    events = await collect_events(stubs, run.name)
    final = await get_run(stubs, run.name)
    agents = (await stubs.control.ListAgents(control_service_pb2.ListAgentsRequest())).agents

    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    remote = step_of(final, "remote")
    assert [a.state for a in remote.attempts] == [
        R.ATTEMPT_STATE_INTERRUPTED,
        R.ATTEMPT_STATE_SUCCEEDED,
    ]
    assert remote.attempts[0].failure.type == "podium.Interrupted"
    assert plain(remote.output)["pid"] == second.pid
    assert plain(step_of(final, "after").output) == {"pid": second.pid}
    # What really ran: attempt 1 on the killed worker (never ended), attempt 2 on the other.
    assert [(e["attempt"], e["pid"], e["event"]) for e in executions(log)] == [
        (1, first.pid, "start"),
        (2, second.pid, "start"),
        (2, second.pid, "end"),
    ]
    assert len(of_type(events, E.RUN_EVENT_TYPE_STEP_SUCCEEDED)) == 3
    [info] = [a for a in agents if a.name == "wlog"]
    assert not info.in_process
    assert [(w.queue, w.sessions) for w in info.workers] == [("default", 1)]


async def test_a_stalled_worker_loses_its_attempt_and_its_late_completion_is_rejected(
    tmp_path: Path,
    start_serving: StartServing,
    start_worker: Callable[..., WorkerProcess],
    connect: Callable[[ServerProcess], Stubs],
) -> None:
    log, release = tmp_path / "executions.log", tmp_path / "release"
    server = start_serving()
    stubs = connect(server)
    stalled = start_worker(server.address)
    await workers_serve(stubs, "wlog")
    step = wlog("remote", log=log, release=str(release))
    # Long enough that a busy machine never delays the healthy worker's
    # heartbeats (one every second) past it.
    step["heartbeatTimeout"] = "3s"
    await create_workflow(stubs, "lease", {"steps": [step]})
    run = await start_run(stubs, "lease", {"x": 1})
    await eventually(lambda: len(executions(log)) == 1, what="the first worker runs the step")
    os.kill(stalled.pid, signal.SIGSTOP)  # alive, connected, silent: no heartbeats
    try:
        healthy = start_worker(server.address)

        def retried() -> bool:
            return [e["pid"] for e in executions(log)] == [stalled.pid, healthy.pid]

        await eventually(retried, what="the retry runs on the healthy worker")
        release.touch()
        events = await collect_events(stubs, run.name)
    finally:
        os.kill(stalled.pid, signal.SIGCONT)

    # The stalled worker wakes up, finishes its attempt and reports it: the
    # server rejects the stale token and nothing changes.
    def reported() -> bool:
        return "server rejected a message about" in stalled.log_text()

    await eventually(reported, what="the late completion is rejected")
    final = await get_run(stubs, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED
    remote = step_of(final, "remote")
    assert [a.state for a in remote.attempts] == [
        R.ATTEMPT_STATE_INTERRUPTED,
        R.ATTEMPT_STATE_SUCCEEDED,
    ]
    assert "no heartbeat" in remote.attempts[0].failure.message
    assert plain(remote.output)["pid"] == healthy.pid
    assert [plain(e.output)["pid"] for e in of_type(events, E.RUN_EVENT_TYPE_STEP_SUCCEEDED)] == [
        healthy.pid
    ]
    assert (await get_run(stubs, run.name)).last_sequence == events[-1].sequence


async def test_workers_reconnect_after_a_server_crash_and_no_finished_step_runs_again(
    tmp_path: Path,
    start_worker: Callable[..., WorkerProcess],
    connect: Callable[[ServerProcess], Stubs],
) -> None:
    log, release = tmp_path / "executions.log", tmp_path / "release"
    db = tmp_path / "podium.db"
    server = start_server_process(db, cwd=ROOT)
    try:
        stubs = connect(server)
        worker = start_worker(server.address)
        await workers_serve(stubs, "wlog")
        spec = {
            "steps": [
                wlog("one", log=log),
                wlog("two", "one", log=log, release=str(release)),
                wlog("three", "two", log=log),
            ]
        }
        await create_workflow(stubs, "chain", spec)
        run = await start_run(stubs, "chain", {"x": 7})

        def two_started() -> bool:
            return [e["step"] for e in executions(log) if e["event"] == "start"] == ["one", "two"]

        await eventually(two_started, what="step two runs on the worker")
        server.kill()
        restarted = start_server_process(db, cwd=ROOT, ports=[server.port])
    finally:
        server.kill()
    try:
        stubs = connect(restarted)
        await workers_serve(stubs, "wlog")  # the same worker process, reconnected
        assert worker.running
        release.touch()
        await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
    finally:
        restarted.stop()

    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    starts = [(e["step"], e["attempt"]) for e in executions(log) if e["event"] == "start"]
    # `one` finished before the crash and never ran again; `two` was in flight
    # (at least once: it ran again); `three` ran once, after the restart.
    assert starts == [("one", 1), ("two", 1), ("two", 2), ("three", 1)]
    # The worker stopped the attempt whose session died with the server.
    assert ("two", 1, "cancelled") in [
        (e["step"], e["attempt"], e["event"]) for e in executions(log)
    ]
    two = step_of(final, "two")
    assert [a.state for a in two.attempts] == [
        R.ATTEMPT_STATE_INTERRUPTED,
        R.ATTEMPT_STATE_SUCCEEDED,
    ]
    assert {e["pid"] for e in executions(log)} == {worker.pid}


async def test_a_worker_process_never_runs_more_than_its_concurrency(
    tmp_path: Path,
    start_serving: StartServing,
    start_worker: Callable[..., WorkerProcess],
    connect: Callable[[ServerProcess], Stubs],
) -> None:
    log, release = tmp_path / "executions.log", tmp_path / "release"
    server = start_serving()
    stubs = connect(server)
    start_worker(server.address, "--concurrency", "2")
    await workers_serve(stubs, "wlog")
    step = wlog("each", log=log, release=str(release))
    step["forEach"] = {"items": "[1, 2, 3, 4, 5, 6]"}
    await create_workflow(stubs, "fan", {"steps": [step]})
    run = await start_run(stubs, "fan", {"x": 0})
    await eventually(lambda: len(executions(log)) == 2, what="two items run")
    assert await worker_sessions(stubs, "wlog") == 1
    release.touch()
    events = await collect_events(stubs, run.name)

    assert events[-1].run_state == R.RUN_STATE_SUCCEEDED
    running = peak = 0
    for record in executions(log):  # in the order the worker wrote them
        running += 1 if record["event"] == "start" else -1
        peak = max(peak, running)
    assert peak == 2
    assert sum(1 for e in executions(log) if e["event"] == "end") == 6
