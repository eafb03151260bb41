"""Completion notifications through a real server against a local endpoint
on a ManualClock: the run's summary is POSTed signed (the endpoint checks
the HMAC), failed deliveries are retried with exponential backoff, every
attempt is an event of the run after its final one, and a delivery still
owed when the server stops is made after the restart."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

import grpc

from podium.core.clock import ManualClock
from podium.egress.settings import EgressSettings
from podium.testing import (
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    eventually,
    get_run,
    of_type,
    run_to_end,
    sequences,
    serving,
    start_run,
)
from podium.testing.http_endpoint import HttpEndpoint, Reply, Request, http_endpoint
from podium.v1 import event_pb2, progress_service_pb2, run_pb2, workflow_pb2

E = event_pb2
R = run_pb2
KEY = "notification-signing-key-91c2"


def egress(monkeypatch: Any) -> EgressSettings:
    monkeypatch.setenv("PODIUM_TEST_HOOK_KEY", KEY)
    return EgressSettings.parse(secrets=["hook=env:PODIUM_TEST_HOOK_KEY"], allow=["127.0.0.1"])


def notified(endpoint: HttpEndpoint, secret: str = "hook") -> dict[str, Any]:
    return {
        "steps": [echo_step("only", input={"x": "input.x"})],
        "notification": {"url": endpoint.url("/done"), "secret": secret},
    }


def verify(request: Request) -> None:
    timestamp = request.headers["Podium-Timestamp"]
    expected = hmac.new(KEY.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256)
    assert hmac.compare_digest(request.headers["Podium-Signature"], "v1=" + expected.hexdigest())


async def requests_reach(endpoint: HttpEndpoint, count: int) -> None:
    await eventually(lambda: len(endpoint.requests) >= count, what=f"{count} deliveries")


async def deliveries(stubs: Stubs, run: run_pb2.Run, count: int) -> list[event_pb2.RunEvent]:
    """The run's NOTIFICATION_* events once there are `count` of them."""
    found: list[event_pb2.RunEvent] = []

    async def recorded() -> bool:
        nonlocal found
        events = await collect_events(stubs, run.name)
        found = [
            e
            for e in events
            if e.type
            in (E.RUN_EVENT_TYPE_NOTIFICATION_DELIVERED, E.RUN_EVENT_TYPE_NOTIFICATION_FAILED)
        ]
        return len(found) >= count

    await eventually(recorded, what=f"{count} notification events")
    return found


async def test_the_summary_is_posted_signed_and_recorded(monkeypatch: Any, db_path: str) -> None:
    with http_endpoint() as endpoint:
        async with serving(db_path, egress=egress(monkeypatch)) as (server, stubs):
            await create_workflow(stubs, "told", notified(endpoint))
            view, events = await run_to_end(stubs, "told", {"x": 1})
            await requests_reach(endpoint, 1)
            (delivered,) = await deliveries(stubs, view, 1)
            after = await collect_events(stubs, view.name, events[-1].sequence)
            run = await get_run(stubs, view.name)
            # The event after the end leaves nothing behind in the server's memory.
            assert server.engine.hub.remembered_runs == 0
    (request,) = endpoint.requests
    verify(request)
    body = request.json()
    assert body["run"] == view.name
    assert body["workflow"] == "workflows/told"
    assert body["state"] == "SUCCEEDED"
    assert body["output"] == {"only": {"x": 1}}
    assert delivered.type == E.RUN_EVENT_TYPE_NOTIFICATION_DELIVERED
    assert delivered.attempt == 1 and "HTTP 200" in delivered.message
    # After the final event, in sequence, and GetRun counts it.
    assert events[-1].type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED
    assert delivered.sequence == events[-1].sequence + 1
    assert [e.sequence for e in after] == [delivered.sequence]
    assert run.last_sequence == delivered.sequence
    assert KEY not in str(request.headers) + "".join(str(e) for e in [*events, *after])


async def test_failed_deliveries_are_retried_with_backoff(monkeypatch: Any) -> None:
    clock = ManualClock()
    with http_endpoint() as endpoint:
        endpoint.script(Reply(500, b"down"), Reply(503, b"still down"))
        async with serving(clock=clock, egress=egress(monkeypatch)) as (_, stubs):
            await create_workflow(stubs, "retried", notified(endpoint))
            view, _ = await run_to_end(stubs, "retried", {"x": 2})
            end = clock.now()
            first = await deliveries(stubs, view, 1)
            assert first[0].type == E.RUN_EVENT_TYPE_NOTIFICATION_FAILED
            assert first[0].due_time.ToSeconds() == end + 1
            clock.advance(1)
            second = await deliveries(stubs, view, 2)
            assert second[1].due_time.ToSeconds() == end + 1 + 2
            clock.advance(1)
            assert len(endpoint.requests) == 2  # not before its due time
            clock.advance(1)
            every = await deliveries(stubs, view, 3)
            final = await collect_events(stubs, view.name)
    assert [e.type for e in every] == [
        E.RUN_EVENT_TYPE_NOTIFICATION_FAILED,
        E.RUN_EVENT_TYPE_NOTIFICATION_FAILED,
        E.RUN_EVENT_TYPE_NOTIFICATION_DELIVERED,
    ]
    assert [e.attempt for e in every] == [1, 2, 3]
    assert "HTTP 500" in every[0].message and "HTTP 503" in every[1].message
    assert len(endpoint.requests) == 3
    for request in endpoint.requests:
        verify(request)
    assert sequences(final) == list(range(1, len(final) + 1))


async def test_an_undelivered_notification_is_delivered_after_a_restart(
    monkeypatch: Any, db_path: str
) -> None:
    clock = ManualClock()
    settings = egress(monkeypatch)
    with http_endpoint() as endpoint:
        endpoint.script(Reply(502, b"bad gateway"))
        async with serving(db_path, clock=clock, egress=settings) as (server, stubs):
            await create_workflow(stubs, "plain", {"steps": [echo_step("only")]})
            # StartRun names the URL (the workflow has none).
            run = await start_run(
                stubs,
                "plain",
                notification=workflow_pb2.Notification(url=endpoint.url("/run"), secret="hook"),
            )
            await collect_events(stubs, run.name)
            await deliveries(stubs, run, 1)
            await server.stop(0.5)
        assert len(endpoint.requests) == 1

        async with serving(db_path, clock=ManualClock(clock.now() + 5), egress=settings) as (
            _,
            stubs,
        ):
            every = await deliveries(stubs, run, 2)
    assert [e.type for e in every] == [
        E.RUN_EVENT_TYPE_NOTIFICATION_FAILED,
        E.RUN_EVENT_TYPE_NOTIFICATION_DELIVERED,
    ]
    assert [r.path for r in endpoint.requests] == ["/run", "/run"]
    verify(endpoint.requests[1])


async def test_a_missing_secret_is_recorded_and_nothing_is_sent(monkeypatch: Any) -> None:
    clock = ManualClock()
    with http_endpoint() as endpoint:
        async with serving(clock=clock, egress=egress(monkeypatch)) as (_, stubs):
            await create_workflow(stubs, "unsigned", notified(endpoint, secret="absent"))
            view, _ = await run_to_end(stubs, "unsigned", {"x": 3})
            (failed,) = await deliveries(stubs, view, 1)
    assert failed.type == E.RUN_EVENT_TYPE_NOTIFICATION_FAILED
    assert "'absent' is not configured" in failed.message
    assert endpoint.requests == []
    assert of_type([failed], E.RUN_EVENT_TYPE_NOTIFICATION_FAILED)


async def test_a_reader_taking_its_events_late_gets_a_stream_that_ends(
    monkeypatch: Any, db_path: str
) -> None:
    """A subscriber that does not read while its stream's window is full takes
    the rest of the run late: its final event and the notification's, recorded
    after it, in one batch. Its stream still ends there, with every event once
    (it never ended). The watcher's channel keeps HTTP/2's 64 KiB window (no
    BDP probing), so that a chain of 200 KB outputs fills it."""
    blob = "x" * 200_000
    steps = [echo_step("s0", input={"blob": "input.blob"})]
    steps += [
        echo_step(f"s{i}", f"s{i - 1}", input={"blob": f"steps.s{i - 1}.output.blob"})
        for i in range(1, 6)
    ]
    with http_endpoint() as endpoint:
        spec = {"steps": steps, "notification": {"url": endpoint.url("/done"), "secret": "hook"}}
        async with (
            serving(db_path, egress=egress(monkeypatch)) as served,
            grpc.aio.insecure_channel(
                served.address, options=[("grpc.http2.bdp_probe", 0)]
            ) as slow,
        ):
            await create_workflow(served.stubs, "late", spec)
            run = await start_run(served.stubs, "late", {"blob": blob})
            call = Stubs.on(slow).progress.WatchRun(
                progress_service_pb2.WatchRunRequest(run=run.name)
            )
            try:
                # Nothing read until the run has ended and its notification is recorded.
                await requests_reach(endpoint, 1)
                (delivered,) = await deliveries(served.stubs, run, 1)
                events: list[event_pb2.RunEvent] = []
                async with asyncio.timeout(30):
                    async for response in call:
                        events.extend(response.events)
            finally:
                call.cancel()
    # Every event once, up to the notification's (taken with the final event).
    assert sequences(events) == list(range(1, delivered.sequence + 1))
    (final,) = of_type(events, E.RUN_EVENT_TYPE_RUN_SUCCEEDED)
    assert final.sequence == delivered.sequence - 1
