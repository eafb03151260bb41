"""Retries and timeouts, end to end on a ManualClock: which retrier decides,
backoff delays and due times in events and in GetRun, durable retries across
a restart, attempt/step/run timeouts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from podium.core.clock import ManualClock
from podium.testing import (
    FOREVER_MS,
    Stubs,
    collect_events,
    create_workflow,
    eventually,
    get_run,
    of_type,
    plain,
    sequences,
    serving,
    start_run,
    step_of,
    step_reaches,
)
from podium.v1 import event_pb2, run_pb2

E = event_pb2
R = run_pb2

START = 1_700_000_000.0


@pytest.fixture
async def manual(db_path: str) -> AsyncIterator[tuple[ManualClock, Stubs]]:
    clock = ManualClock(start=START)
    async with serving(db_path, clock=clock) as (_, stubs):
        yield clock, stubs


def at(stamp: timestamp_pb2.Timestamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


def secs(duration: duration_pb2.Duration) -> float:
    return duration.seconds + duration.nanos / 1e9


def flaky(step_id: str, *depends_on: str, **config: Any) -> dict[str, Any]:
    return {"id": step_id, "agent": "flaky", "dependsOn": list(depends_on), "config": config}


def retrier(*errors: str, **fields: Any) -> dict[str, Any]:
    return {"errorEquals": list(errors), **fields}


def attempt_states(step: run_pb2.StepRun) -> list[int]:
    return [a.state for a in step.attempts]


def step_events(events: Sequence[event_pb2.RunEvent], step_id: str) -> list[tuple[int, int]]:
    return [(e.type, e.attempt) for e in events if e.step_id == step_id]


async def armed(clock: ManualClock, count: int = 1) -> None:
    await eventually(lambda: clock.sleepers >= count, what=f"{count} timer(s) armed")


async def finished(stubs: Stubs, run: str) -> tuple[run_pb2.Run, list[event_pb2.RunEvent]]:
    events = await collect_events(stubs, run)
    return await get_run(stubs, run), events


# -- backoff, events and the WAITING state --------------------------------------------------


async def test_retry_backoff_events_and_waiting_state(
    manual: tuple[ManualClock, Stubs],
) -> None:
    clock, stubs = manual
    policy = [retrier("FlakyError", interval="1s", backoffRate=2, maxAttempts=3)]
    await create_workflow(
        stubs, "backoff", {"steps": [{**flaky("f", fail_attempts=2), "retry": policy}]}
    )
    run = await start_run(stubs, "backoff")

    waiting = await step_reaches(stubs, run.name, "f", R.STEP_STATE_WAITING, attempts=1)
    step = step_of(waiting, "f")
    assert at(step.due_time) == pytest.approx(START + 1)
    assert "FlakyError" in step.reason
    assert attempt_states(step) == [R.ATTEMPT_STATE_FAILED]
    assert step.attempts[0].failure.type == "FlakyError"
    await armed(clock)
    clock.advance(0.5)  # not due yet
    assert clock.sleepers == 1
    assert len(step_of(await get_run(stubs, run.name), "f").attempts) == 1
    clock.advance(0.5)

    waiting = await step_reaches(stubs, run.name, "f", R.STEP_STATE_WAITING, attempts=2)
    assert at(step_of(waiting, "f").due_time) == pytest.approx(START + 1 + 2)
    await armed(clock)
    clock.advance(2)

    done, events = await finished(stubs, run.name)
    assert done.state == R.RUN_STATE_SUCCEEDED
    step = step_of(done, "f")
    assert step.state == R.STEP_STATE_SUCCEEDED
    assert [a.number for a in step.attempts] == [1, 2, 3]
    assert attempt_states(step) == [
        R.ATTEMPT_STATE_FAILED,
        R.ATTEMPT_STATE_FAILED,
        R.ATTEMPT_STATE_SUCCEEDED,
    ]
    assert [at(a.start_time) for a in step.attempts] == pytest.approx([START, START + 1, START + 3])
    assert not step.HasField("due_time")

    assert step_events(events, "f") == [
        (E.RUN_EVENT_TYPE_STEP_STARTED, 1),
        (E.RUN_EVENT_TYPE_STEP_FAILED, 1),
        (E.RUN_EVENT_TYPE_STEP_RETRYING, 1),
        (E.RUN_EVENT_TYPE_STEP_STARTED, 2),
        (E.RUN_EVENT_TYPE_STEP_FAILED, 2),
        (E.RUN_EVENT_TYPE_STEP_RETRYING, 2),
        (E.RUN_EVENT_TYPE_STEP_STARTED, 3),
        (E.RUN_EVENT_TYPE_STEP_SUCCEEDED, 3),
    ]
    retrying = of_type(events, E.RUN_EVENT_TYPE_STEP_RETRYING)
    assert [secs(e.retry_delay) for e in retrying] == [1.0, 2.0]
    assert [at(e.due_time) for e in retrying] == pytest.approx([START + 1, START + 3])
    assert [at(e.time) for e in retrying] == pytest.approx([START, START + 1])
    assert {e.failure.type for e in retrying} == {"FlakyError"}
    assert {e.step_state for e in retrying} == {R.STEP_STATE_WAITING}
    assert sequences(events) == list(range(1, len(events) + 1))


async def test_the_first_matching_retrier_decides(manual: tuple[ManualClock, Stubs]) -> None:
    clock, stubs = manual
    policy = [
        retrier("Other", interval="9s"),
        retrier("RateLimited", interval="5s"),
        retrier("podium.All", interval="1s"),
    ]
    step = {**flaky("f", error="RateLimited"), "retry": policy}
    await create_workflow(stubs, "first-match", {"steps": [step]})
    run = await start_run(stubs, "first-match")
    waiting = await step_reaches(stubs, run.name, "f", R.STEP_STATE_WAITING, attempts=1)
    assert at(step_of(waiting, "f").due_time) == pytest.approx(START + 5)
    await armed(clock)
    clock.advance(1)  # the podium.All interval: not used
    assert clock.sleepers == 1
    clock.advance(4)
    done, events = await finished(stubs, run.name)
    assert done.state == R.RUN_STATE_SUCCEEDED
    assert [secs(e.retry_delay) for e in of_type(events, E.RUN_EVENT_TYPE_STEP_RETRYING)] == [5]


async def test_a_spent_first_match_is_not_revived_by_a_later_retrier(
    manual: tuple[ManualClock, Stubs],
) -> None:
    _, stubs = manual
    policy = [retrier("FlakyError", maxAttempts=1), retrier("podium.All", maxAttempts=5)]
    await create_workflow(stubs, "spent", {"steps": [{**flaky("f"), "retry": policy}]})
    done, events = await finished(stubs, (await start_run(stubs, "spent")).name)
    assert done.state == R.RUN_STATE_FAILED
    assert len(step_of(done, "f").attempts) == 1
    assert not of_type(events, E.RUN_EVENT_TYPE_STEP_RETRYING)


async def test_podium_all_retries_any_type(manual: tuple[ManualClock, Stubs]) -> None:
    clock, stubs = manual
    step = {**flaky("f", error="Whatever.Odd"), "retry": [retrier("podium.All", interval="2s")]}
    await create_workflow(stubs, "catch-all", {"steps": [step]})
    run = await start_run(stubs, "catch-all")
    await step_reaches(stubs, run.name, "f", R.STEP_STATE_WAITING, attempts=1)
    await armed(clock)
    clock.advance(2)
    done, events = await finished(stubs, run.name)
    assert done.state == R.RUN_STATE_SUCCEEDED
    (retrying,) = of_type(events, E.RUN_EVENT_TYPE_STEP_RETRYING)
    assert retrying.failure.type == "Whatever.Odd"


@pytest.mark.parametrize(
    ("config", "policy"),
    [
        # No retrier names the failure's type.
        ({"error": "Other"}, [retrier("FlakyError"), retrier("RateLimited")]),
        # The failure says a retry cannot help: not even podium.All retries it.
        ({"retryable": False}, [retrier("FlakyError"), retrier("podium.All")]),
    ],
    ids=["no-match", "non-retryable"],
)
async def test_failures_that_are_not_retried(
    manual: tuple[ManualClock, Stubs], config: dict[str, Any], policy: list[dict[str, Any]]
) -> None:
    _, stubs = manual
    await create_workflow(stubs, "no-retry", {"steps": [{**flaky("f", **config), "retry": policy}]})
    done, events = await finished(stubs, (await start_run(stubs, "no-retry")).name)
    assert done.state == R.RUN_STATE_FAILED
    step = step_of(done, "f")
    assert step.state == R.STEP_STATE_FAILED
    assert attempt_states(step) == [R.ATTEMPT_STATE_FAILED]
    assert step.failure.type == config.get("error", "FlakyError")
    assert step.failure.retryable == config.get("retryable", True)
    assert not of_type(events, E.RUN_EVENT_TYPE_STEP_RETRYING)
    assert step_events(events, "f") == [
        (E.RUN_EVENT_TYPE_STEP_STARTED, 1),
        (E.RUN_EVENT_TYPE_STEP_FAILED, 1),
    ]


async def test_max_attempts_exhausted_fails_step_and_run(
    manual: tuple[ManualClock, Stubs],
) -> None:
    clock, stubs = manual
    policy = [retrier("FlakyError", interval="1s", backoffRate=1, maxAttempts=3)]
    await create_workflow(
        stubs,
        "exhausted",
        {"steps": [{**flaky("f", fail_attempts=10), "retry": policy}, flaky("after", "f")]},
    )
    run = await start_run(stubs, "exhausted")
    for made in (1, 2):
        await step_reaches(stubs, run.name, "f", R.STEP_STATE_WAITING, attempts=made)
        await armed(clock)
        clock.advance(1)
    done, events = await finished(stubs, run.name)
    assert done.state == R.RUN_STATE_FAILED
    assert done.failure.type == "FlakyError"
    assert "'f'" in done.failure.message
    step = step_of(done, "f")
    assert step.state == R.STEP_STATE_FAILED
    assert attempt_states(step) == [R.ATTEMPT_STATE_FAILED] * 3
    assert step_of(done, "after").state == R.STEP_STATE_SKIPPED
    assert len(of_type(events, E.RUN_EVENT_TYPE_STEP_RETRYING)) == 2
    final_failure = [e for e in events if e.type == E.RUN_EVENT_TYPE_STEP_FAILED][-1]
    assert (final_failure.attempt, final_failure.step_state) == (3, R.STEP_STATE_FAILED)
    assert events[-1].type == E.RUN_EVENT_TYPE_RUN_FAILED


async def test_workflow_default_retry_applies_to_steps_without_their_own(
    manual: tuple[ManualClock, Stubs],
) -> None:
    clock, stubs = manual
    spec = {
        "retry": [retrier("podium.All", interval="3s")],
        "steps": [
            flaky("inherits"),
            # Its own policy replaces the default, and names another type.
            {**flaky("own"), "retry": [retrier("Nope")], "onFailure": "FAILURE_POLICY_CONTINUE"},
        ],
    }
    await create_workflow(stubs, "defaults", spec)
    run = await start_run(stubs, "defaults")
    waiting = await step_reaches(stubs, run.name, "inherits", R.STEP_STATE_WAITING, attempts=1)
    assert at(step_of(waiting, "inherits").due_time) == pytest.approx(START + 3)
    await armed(clock)
    clock.advance(3)
    done, events = await finished(stubs, run.name)
    assert done.state == R.RUN_STATE_PARTIALLY_SUCCEEDED
    assert step_of(done, "inherits").state == R.STEP_STATE_SUCCEEDED
    assert len(step_of(done, "inherits").attempts) == 2
    assert step_of(done, "own").state == R.STEP_STATE_FAILED
    assert len(step_of(done, "own").attempts) == 1
    assert {e.step_id for e in of_type(events, E.RUN_EVENT_TYPE_STEP_RETRYING)} == {"inherits"}


# -- durable retries ------------------------------------------------------------------------


async def test_a_retry_wait_survives_a_restart(db_path: str) -> None:
    policy = [retrier("FlakyError", interval="60s")]
    clock = ManualClock(start=START)
    async with serving(db_path, clock=clock) as (server, stubs):
        await create_workflow(stubs, "durable", {"steps": [{**flaky("f"), "retry": policy}]})
        run = await start_run(stubs, "durable")
        before = await step_reaches(stubs, run.name, "f", R.STEP_STATE_WAITING, attempts=1)
        assert at(step_of(before, "f").due_time) == pytest.approx(START + 60)
        await server.stop(0.1)

    clock = ManualClock(start=START)
    async with serving(db_path, clock=clock) as (_, stubs):
        after = await step_reaches(stubs, run.name, "f", R.STEP_STATE_WAITING, attempts=1)
        assert step_of(after, "f").due_time == step_of(before, "f").due_time
        await armed(clock)
        clock.advance(59)
        assert clock.sleepers == 1  # the retry's timer did not fire
        not_yet = step_of(await get_run(stubs, run.name), "f")
        assert (not_yet.state, len(not_yet.attempts)) == (R.STEP_STATE_WAITING, 1)
        clock.advance(2)
        done, events = await finished(stubs, run.name)

    assert done.state == R.RUN_STATE_SUCCEEDED
    step = step_of(done, "f")
    assert attempt_states(step) == [R.ATTEMPT_STATE_FAILED, R.ATTEMPT_STATE_SUCCEEDED]
    assert at(step.attempts[1].start_time) == pytest.approx(START + 61)
    # The restart neither repeats nor invents events about attempt 1.
    assert step_events(events, "f") == [
        (E.RUN_EVENT_TYPE_STEP_STARTED, 1),
        (E.RUN_EVENT_TYPE_STEP_FAILED, 1),
        (E.RUN_EVENT_TYPE_STEP_RETRYING, 1),
        (E.RUN_EVENT_TYPE_STEP_STARTED, 2),
        (E.RUN_EVENT_TYPE_STEP_SUCCEEDED, 2),
    ]
    assert sequences(events) == list(range(1, len(events) + 1))


# -- timeouts -------------------------------------------------------------------------------


def slow(step_id: str, *depends_on: str, **fields: Any) -> dict[str, Any]:
    """An echo only a timeout ends (FOREVER_MS of real time otherwise)."""
    return {
        "id": step_id,
        "agent": "echo",
        "dependsOn": list(depends_on),
        "config": {"delay_ms": FOREVER_MS},
        **fields,
    }


async def test_attempt_timeout_fails_the_attempt(manual: tuple[ManualClock, Stubs]) -> None:
    clock, stubs = manual
    await create_workflow(stubs, "attempt-timeout", {"steps": [slow("s", attemptTimeout="1s")]})
    run = await start_run(stubs, "attempt-timeout")
    await step_reaches(stubs, run.name, "s", R.STEP_STATE_RUNNING)
    await armed(clock)
    clock.advance(0.9)
    assert step_of(await get_run(stubs, run.name), "s").state == R.STEP_STATE_RUNNING
    clock.advance(0.1)
    done, _ = await finished(stubs, run.name)
    assert done.state == R.RUN_STATE_FAILED
    step = step_of(done, "s")
    assert step.state == R.STEP_STATE_FAILED
    assert step.failure.type == "podium.Timeout"
    assert "attempt timed out" in step.failure.message
    assert attempt_states(step) == [R.ATTEMPT_STATE_FAILED]
    assert step.attempts[0].failure.type == "podium.Timeout"
    assert at(step.attempts[0].end_time) == pytest.approx(START + 1)
    assert done.failure.type == "podium.Timeout"


async def test_an_attempt_timeout_is_retried_by_a_timeout_retrier(
    manual: tuple[ManualClock, Stubs],
) -> None:
    clock, stubs = manual
    step = slow(
        "s",
        attemptTimeout="1s",
        retry=[retrier("podium.Timeout", interval="2s", maxAttempts=2)],
    )
    await create_workflow(stubs, "timeout-retry", {"steps": [step]})
    run = await start_run(stubs, "timeout-retry")
    await step_reaches(stubs, run.name, "s", R.STEP_STATE_RUNNING, attempts=1)
    await armed(clock)
    clock.advance(1)
    await step_reaches(stubs, run.name, "s", R.STEP_STATE_WAITING, attempts=1)
    await armed(clock)
    clock.advance(2)
    await step_reaches(stubs, run.name, "s", R.STEP_STATE_RUNNING, attempts=2)
    await armed(clock)
    clock.advance(1)
    done, events = await finished(stubs, run.name)
    assert done.state == R.RUN_STATE_FAILED
    s = step_of(done, "s")
    assert attempt_states(s) == [R.ATTEMPT_STATE_FAILED] * 2
    assert [a.failure.type for a in s.attempts] == ["podium.Timeout"] * 2
    (retrying,) = of_type(events, E.RUN_EVENT_TYPE_STEP_RETRYING)
    assert retrying.failure.type == "podium.Timeout"
    assert secs(retrying.retry_delay) == 2


async def test_step_timeout_spans_attempts_and_waits(manual: tuple[ManualClock, Stubs]) -> None:
    clock, stubs = manual
    # Attempt 1 may take 2s; the retry waits 0.5s; attempt 2 only has what is
    # left of the step's 3s, and the step fails when that is spent.
    step = slow(
        "s",
        attemptTimeout="2s",
        timeout="3s",
        retry=[retrier("podium.Timeout", interval="0.5s", maxAttempts=5)],
    )
    await create_workflow(stubs, "step-timeout", {"steps": [step]})
    run = await start_run(stubs, "step-timeout")
    await step_reaches(stubs, run.name, "s", R.STEP_STATE_RUNNING, attempts=1)
    await armed(clock)
    clock.advance(2)
    await step_reaches(stubs, run.name, "s", R.STEP_STATE_WAITING, attempts=1)
    await armed(clock)
    clock.advance(0.5)
    await step_reaches(stubs, run.name, "s", R.STEP_STATE_RUNNING, attempts=2)
    await armed(clock)
    clock.advance(0.5)
    done, _ = await finished(stubs, run.name)
    s = step_of(done, "s")
    assert s.state == R.STEP_STATE_FAILED
    assert s.failure.type == "podium.Timeout"
    assert "step timed out" in s.failure.message
    assert len(s.attempts) == 2  # maxAttempts 5, but the step's time was up
    assert at(s.end_time) == pytest.approx(START + 3)


async def test_a_retry_due_after_the_step_deadline_is_not_waited_for(
    manual: tuple[ManualClock, Stubs],
) -> None:
    clock, stubs = manual
    policy = [retrier("FlakyError", interval="2s", backoffRate=1, maxAttempts=10)]
    step = {**flaky("f", fail_attempts=10), "retry": policy, "timeout": "5s"}
    await create_workflow(stubs, "deadline-retry", {"steps": [step]})
    run = await start_run(stubs, "deadline-retry")
    for made in (1, 2):
        await step_reaches(stubs, run.name, "f", R.STEP_STATE_WAITING, attempts=made)
        await armed(clock)
        clock.advance(2)
    # Attempt 3 failed at +4s; a retry at +6s would be past the deadline (+5s).
    done, _ = await finished(stubs, run.name)
    f = step_of(done, "f")
    assert f.state == R.STEP_STATE_FAILED
    assert len(f.attempts) == 3
    assert at(f.end_time) == pytest.approx(START + 4)


async def test_run_timeout_fails_the_run_and_skips_pending_steps(
    manual: tuple[ManualClock, Stubs],
) -> None:
    clock, stubs = manual
    spec = {
        "timeout": "10s",
        "steps": [slow("running"), slow("pending", "running"), {"id": "quick", "agent": "echo"}],
    }
    await create_workflow(stubs, "run-timeout", spec)
    run = await start_run(stubs, "run-timeout")
    await step_reaches(stubs, run.name, "running", R.STEP_STATE_RUNNING)
    await step_reaches(stubs, run.name, "quick", R.STEP_STATE_SUCCEEDED)
    await armed(clock)
    clock.advance(9.9)
    assert (await get_run(stubs, run.name)).state == R.RUN_STATE_RUNNING
    clock.advance(0.1)
    done, events = await finished(stubs, run.name)
    assert done.state == R.RUN_STATE_FAILED
    assert done.failure.type == "podium.Timeout"
    assert at(done.end_time) == pytest.approx(START + 10)
    assert step_of(done, "quick").state == R.STEP_STATE_SUCCEEDED
    assert step_of(done, "running").state == R.STEP_STATE_CANCELLED
    assert step_of(done, "running").attempts[0].state == R.ATTEMPT_STATE_CANCELLED
    pending = step_of(done, "pending")
    assert pending.state == R.STEP_STATE_SKIPPED
    assert "timed out" in pending.reason
    assert not pending.attempts
    assert events[-1].type == E.RUN_EVENT_TYPE_RUN_FAILED
    assert events[-1].failure.type == "podium.Timeout"


async def test_a_step_whose_deadline_passes_while_it_queues_does_not_start(
    manual: tuple[ManualClock, Stubs],
) -> None:
    clock, stubs = manual
    spec = {
        "maxConcurrency": 1,
        "steps": [
            slow("hog", attemptTimeout="10s", onFailure="FAILURE_POLICY_CONTINUE"),
            # Ready at once, but queued behind `hog` for the run's only slot.
            {"id": "late", "agent": "echo", "timeout": "2s"},
        ],
    }
    await create_workflow(stubs, "queued-deadline", spec)
    run = await start_run(stubs, "queued-deadline")
    await step_reaches(stubs, run.name, "hog", R.STEP_STATE_RUNNING)
    await armed(clock)
    clock.advance(10)  # hog times out; late's 2s were spent waiting for the slot
    done, _ = await finished(stubs, run.name)
    late = step_of(done, "late")
    assert late.state == R.STEP_STATE_FAILED, R.StepState.Name(late.state)
    assert late.failure.type == "podium.Timeout"
    assert not late.attempts


async def test_a_retry_already_due_at_restart_runs_at_once(db_path: str) -> None:
    policy = [retrier("FlakyError", interval="60s")]
    clock = ManualClock(start=START)
    async with serving(db_path, clock=clock) as (server, stubs):
        await create_workflow(stubs, "overdue", {"steps": [{**flaky("f"), "retry": policy}]})
        run = await start_run(stubs, "overdue")
        await step_reaches(stubs, run.name, "f", R.STEP_STATE_WAITING, attempts=1)
        await server.stop(0.1)

    # The server was down past the due time: nothing to wait for.
    async with serving(db_path, clock=ManualClock(start=START + 3600)) as (_, stubs):
        done, _ = await finished(stubs, run.name)
    assert done.state == R.RUN_STATE_SUCCEEDED
    assert at(step_of(done, "f").attempts[1].start_time) == pytest.approx(START + 3600)


async def test_the_run_deadline_survives_a_restart(db_path: str) -> None:
    spec = {"timeout": "10s", "steps": [slow("s")]}
    clock = ManualClock(start=START)
    async with serving(db_path, clock=clock) as (server, stubs):
        await create_workflow(stubs, "run-deadline", spec)
        run = await start_run(stubs, "run-deadline")
        await step_reaches(stubs, run.name, "s", R.STEP_STATE_RUNNING)
        await server.stop(0.1)

    clock = ManualClock(start=START + 5)
    async with serving(db_path, clock=clock) as (_, stubs):
        await step_reaches(stubs, run.name, "s", R.STEP_STATE_RUNNING, attempts=2)
        await armed(clock)
        clock.advance(4.9)
        assert (await get_run(stubs, run.name)).state == R.RUN_STATE_RUNNING
        clock.advance(0.2)
        done, _ = await finished(stubs, run.name)
    assert done.state == R.RUN_STATE_FAILED
    assert done.failure.type == "podium.Timeout"
    assert at(done.end_time) == pytest.approx(START + 10.1)


async def test_a_timed_out_run_compensates_its_succeeded_steps(
    manual: tuple[ManualClock, Stubs],
) -> None:
    clock, stubs = manual
    undo = {"agent": "echo", "input": {"undo": "output"}}
    spec = {
        "timeout": "1s",
        "steps": [
            {"id": "done", "agent": "echo", "input": {"v": "1"}, "compensate": undo},
            slow("busy", "done", compensate=undo),
        ],
    }
    await create_workflow(stubs, "timeout-saga", spec)
    run = await start_run(stubs, "timeout-saga")
    await step_reaches(stubs, run.name, "busy", R.STEP_STATE_RUNNING)
    await armed(clock)
    clock.advance(1)
    done, events = await finished(stubs, run.name)
    assert done.state == R.RUN_STATE_FAILED
    saga = [
        (e.type, e.step_id)
        for e in events
        if e.type
        in (E.RUN_EVENT_TYPE_COMPENSATION_STARTED, E.RUN_EVENT_TYPE_COMPENSATION_SUCCEEDED)
    ]
    assert saga == [
        (E.RUN_EVENT_TYPE_COMPENSATION_STARTED, "done"),
        (E.RUN_EVENT_TYPE_COMPENSATION_SUCCEEDED, "done"),
    ]
    assert plain(events[-2].output) == {"undo": {"v": 1}}


async def test_a_run_timeout_just_after_a_dependent_was_launched_still_ends(
    manual: tuple[ManualClock, Stubs],
) -> None:
    # One advance wakes the 0.5s wait (which launches `after`) and then the run's
    # deadline, which cancels `after` before its task ever ran: it must still end.
    clock, stubs = manual
    spec = {
        "timeout": "1s",
        "steps": [
            {"id": "wait", "wait": {"duration": "0.5s"}},
            {"id": "after", "agent": "echo", "dependsOn": ["wait"]},
        ],
    }
    await create_workflow(stubs, "timeout-race", spec)
    run = await start_run(stubs, "timeout-race")
    await armed(clock, 2)
    clock.advance(1)
    done, events = await finished(stubs, run.name)
    assert done.state == R.RUN_STATE_FAILED
    assert done.failure.type == "podium.Timeout"
    assert step_of(done, "wait").state == R.STEP_STATE_SUCCEEDED
    assert step_of(done, "after").state == R.STEP_STATE_CANCELLED
    assert not step_of(done, "after").attempts
    assert events[-1].type == E.RUN_EVENT_TYPE_RUN_FAILED
