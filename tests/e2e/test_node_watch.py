"""The Node client's watchRun (clients/node/src/watch.ts) against a real server: it resumes a
stream the server cut off for lagging (SUBSCRIBER_TOO_SLOW) and one a restarting server dropped,
and yields every sequence once, in order, to the run's final event. Then its other rules
against a scripted WatchRun server, as the Python client's are tested.

The watcher is clients/node/test/watch.ts, built by `make node`; it prints one JSON record per
line. The cut-off is forced as in tests/api/test_watch_cut_off.py: a feed of 20 events, outputs
that fill the client's flow-control window, and a watcher that stops reading after its first
event (before the outputs, which wait for it) until the run has ended."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc

from podium.core.states import RunState
from podium.testing import (
    HANG_TIMEOUT,
    HoldAgent,
    InProcessServer,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    eventually,
    plugins_with,
    serving,
    start_run,
    start_server_process_async,
)
from podium.v1 import event_pb2, progress_service_pb2, progress_service_pb2_grpc, run_pb2

NODE = Path(__file__).resolve().parents[2] / "clients" / "node"
WATCH = NODE / "dist" / "test" / "watch.js"

# As in tests/api/test_watch_cut_off.py: the watcher falls out of a 20-event feed once ten
# outputs of 600 kB have filled its flow-control window.
FEED = 20
BLOB = "x" * 600_000
BIG_STEPS = 10
ITEMS = 200


def _built() -> None:
    sources = [p for d in ("src", "test") for p in (NODE / d).rglob("*.ts")]
    assert WATCH.exists(), "the Node client is not built: run `make node`"
    newest = max(p.stat().st_mtime for p in sources)
    assert WATCH.stat().st_mtime >= newest - 1, "the Node client is older than its sources"


class NodeWatcher:
    """A running `node dist/test/watch.js` and the records it printed."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.records: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls, address: str, run: str, *, hold: bool = False, options: Sequence[str] = ()
    ) -> NodeWatcher:
        _built()
        args = ["--address", address, "--run", run, *(["--hold"] if hold else []), *options]
        process = await asyncio.create_subprocess_exec(
            "node", str(WATCH), *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.records.append(json.loads(line))

    def seen(self, event: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["event"] == event]

    def sequences(self) -> list[int]:
        return [r["sequence"] for r in self.seen("run-event")]

    def go_on(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")

    async def finished(self) -> list[dict[str, Any]]:
        try:
            await asyncio.wait_for(self.process.wait(), HANG_TIMEOUT)
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
        await self._reader
        return self.records


def lagging_spec() -> dict[str, Any]:
    return {
        "steps": [
            # Held until the watcher is subscribed and has stopped reading: the outputs after
            # it then certainly flow live to a subscriber that does not take them.
            {"id": "gate", "agent": "hold"},
            *(echo_step(f"big{i}", "gate", input={"blob": "input.blob"}) for i in range(BIG_STEPS)),
            echo_step(
                "each",
                *(f"big{i}" for i in range(BIG_STEPS)),
                forEach={"items": "input.items"},
                input={"value": "item"},
            ),
        ]
    }


async def succeeded(server: InProcessServer, name: str) -> int:
    """Waits until the run succeeded (asked of the engine: its GetRun is too big for a
    client); its last sequence."""
    engine = server.server.engine
    run_id = name.removeprefix("runs/")

    async def done() -> bool:
        state, _ = await engine.run_status(run_id)
        return state == RunState.SUCCEEDED

    await eventually(done, what="the run succeeded")
    return (await engine.run_status(run_id))[1]


async def test_watch_run_resumes_a_cut_off_stream_with_no_gap_and_no_duplicate() -> None:
    hold = HoldAgent()
    async with serving(plugins=plugins_with([hold])) as server:
        server.server.engine.hub.feed_events = FEED
        await create_workflow(server.stubs, "laggard", lagging_spec())
        run = await start_run(server.stubs, "laggard", {"blob": BLOB, "items": list(range(ITEMS))})
        watcher = await NodeWatcher.start(server.address, run.name, hold=True)
        await eventually(lambda: bool(watcher.seen("holding")), what="the watcher's first event")
        hold.release()
        # The run goes on while the watcher does not read; then it reads the rest.
        last_sequence = await succeeded(server, run.name)
        watcher.go_on()
        records = await watcher.finished()
        assert server.server.engine.hub.cut_offs >= 1
    assert records[-1] == {"event": "end"}
    assert watcher.sequences() == list(range(1, last_sequence + 1))
    assert watcher.seen("run-event")[-1]["type"] == "RUN_SUCCEEDED"


async def test_watch_run_resumes_across_a_server_restart(tmp_path: Path) -> None:
    db = tmp_path / "podium.db"
    server = await start_server_process_async(db, cwd=NODE.parents[1])
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stubs = Stubs.on(channel)
            chain = [echo_step("s0", delay_ms=200)]
            chain += [echo_step(f"s{i}", f"s{i - 1}", delay_ms=200) for i in range(1, 6)]
            await create_workflow(stubs, "chain", {"steps": chain})
            run = await start_run(stubs, "chain")
        watcher = await NodeWatcher.start(server.address, run.name)
        await eventually(lambda: bool(watcher.seen("run-event")), what="the watcher's first event")
        server.kill()  # kill -9 mid-run: the watcher's connection drops (UNAVAILABLE)
        server = await start_server_process_async(db, cwd=NODE.parents[1], ports=[server.port])
        records = await watcher.finished()
        async with grpc.aio.insecure_channel(server.address) as channel:
            events = await collect_events(Stubs.on(channel), run.name)
    finally:
        server.kill()
    assert records[-1] == {"event": "end"}
    # Exactly the run's event log, once each, to its final event.
    assert [(r["sequence"], r["type"]) for r in watcher.seen("run-event")] == [
        (e.sequence, event_pb2.RunEventType.Name(e.type).removeprefix("RUN_EVENT_TYPE_"))
        for e in events
    ]
    assert watcher.sequences() == list(range(1, events[-1].sequence + 1))
    assert watcher.seen("run-event")[-1]["type"] == "RUN_SUCCEEDED"


async def test_watch_run_raises_other_errors_at_once(in_process_server: InProcessServer) -> None:
    watcher = await NodeWatcher.start(in_process_server.address, "no-such-run")
    records = await watcher.finished()
    assert [(r["event"], r["code"]) for r in records] == [("error", 5)]  # NOT_FOUND


# The rules a real server seldom shows (a replay overlapping what was delivered, a clean end
# before the final event, giving up), against a scripted WatchRun as in
# tests/unit/client/test_watch.py for the Python client. A script is what each successive call
# does: batches to send, then how it ends (None: cleanly; a StatusCode: aborted with it).
Script = tuple[Sequence[Sequence[int]], grpc.StatusCode | None]
WatchContext = grpc.aio.ServicerContext[
    progress_service_pb2.WatchRunRequest, progress_service_pb2.WatchRunResponse
]
FINAL = 5  # the scripts' final event


def event(sequence: int) -> event_pb2.RunEvent:
    final = sequence == FINAL
    return event_pb2.RunEvent(
        run="runs/abc",
        sequence=sequence,
        type=event_pb2.RUN_EVENT_TYPE_RUN_SUCCEEDED
        if final
        else event_pb2.RUN_EVENT_TYPE_STEP_PROGRESS,
        run_state=run_pb2.RUN_STATE_SUCCEEDED if final else run_pb2.RUN_STATE_RUNNING,
    )


class ScriptedProgress(progress_service_pb2_grpc.ProgressServiceServicer):
    def __init__(self, scripts: Sequence[Script]) -> None:
        self.scripts = list(scripts)
        self.requests: list[int] = []

    async def WatchRun(
        self, request: progress_service_pb2.WatchRunRequest, context: WatchContext
    ) -> AsyncIterator[progress_service_pb2.WatchRunResponse]:
        self.requests.append(request.after_sequence)
        batches, ending = self.scripts.pop(0) if self.scripts else ((), grpc.StatusCode.UNAVAILABLE)
        for batch in batches:
            yield progress_service_pb2.WatchRunResponse(events=[event(s) for s in batch])
        if ending is not None:
            await context.abort(ending, "scripted")


async def watch_scripted(
    scripts: Sequence[Script], options: Sequence[str] = ()
) -> tuple[list[dict[str, Any]], list[int]]:
    """The watcher's records, and the after_sequence of each call it made."""
    servicer = ScriptedProgress(scripts)  # type: ignore[abstract]
    server = grpc.aio.server()
    progress_service_pb2_grpc.add_ProgressServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        watcher = await NodeWatcher.start(f"127.0.0.1:{port}", "abc", options=options)
        return await watcher.finished(), servicer.requests
    finally:
        await server.stop(grace=None)


def sequences_of(records: list[dict[str, Any]]) -> list[int]:
    return [r["sequence"] for r in records if r["event"] == "run-event"]


async def test_a_replay_overlapping_what_was_delivered_repeats_nothing() -> None:
    records, requests = await watch_scripted(
        [
            (([1, 2], [3]), grpc.StatusCode.UNAVAILABLE),
            (([2, 3, 4], [5]), None),
        ]
    )
    assert sequences_of(records) == [1, 2, 3, 4, 5]
    assert records[-1] == {"event": "end"}
    assert requests == [0, 3]


async def test_a_clean_end_before_the_final_event_resumes_once_then_stops() -> None:
    # Cut short after delivering events: resume; an empty clean stream: stop.
    records, requests = await watch_scripted([(([1],), None), ((), None)])
    assert sequences_of(records) == [1]
    assert records[-1] == {"event": "end"}
    assert requests == [0, 1]


async def test_it_gives_up_after_the_policy_time() -> None:
    # Every call UNAVAILABLE; the policy's clock is 100 ms further at each failure and it gives
    # up after 300 ms: at the fourth failure, whatever the machine's speed.
    records, requests = await watch_scripted([], ["--tick-clock", "--give-up-ms", "300"])
    assert [(r["event"], r["code"]) for r in records] == [("error", 14)]  # UNAVAILABLE
    assert requests == [0, 0, 0, 0]
