"""The watch renderer (podium.cli.progress, podium.cli.watch) on governance
events: waits, breaker changes and budget warnings shown, unknown event
types never crash it."""

from __future__ import annotations

import io

from google.protobuf import timestamp_pb2
from rich.console import Console

from podium.cli.progress import RunProgress
from podium.cli.watch import event_line
from podium.v1 import common_pb2, control_service_pb2, event_pb2, progress_service_pb2, run_pb2

C, E, R = control_service_pb2, event_pb2, run_pb2


def _event(seq: int, type_: int, **fields: object) -> event_pb2.RunEvent:
    return event_pb2.RunEvent(
        run="runs/abc",
        sequence=seq,
        time=timestamp_pb2.Timestamp(seconds=1_750_000_000 + seq),
        type=type_,  # type: ignore[arg-type]
        run_state=R.RUN_STATE_RUNNING,
        **fields,  # type: ignore[arg-type]
    )


def _render(progress: RunProgress) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None).print(progress)
    return buffer.getvalue()


def test_waits_breakers_and_budget_warnings_in_the_watch() -> None:
    run = run_pb2.Run(name="runs/abc", workflow="workflows/ask")
    run.steps.add(step_id="ask", agent="llm")
    progress = RunProgress(run)
    waiting = _event(
        3,
        E.RUN_EVENT_TYPE_STEP_WAITING,
        step_id="ask",
        step_state=R.STEP_STATE_WAITING,
        message="quota:sim-rpm",
    )
    opened = _event(
        4,
        E.RUN_EVENT_TYPE_CIRCUIT_OPENED,
        step_id="ask",
        breaker="provider:openai",
        message="5 consecutive failures",
    )
    warned = _event(
        5,
        E.RUN_EVENT_TYPE_BUDGET_WARNING,
        step_id="ask",
        budget="daily",
        cost=common_pb2.Money(currency_code="USD", units=4),
        message="spent 4 of 5 (80% warning threshold)",
    )
    for event in (waiting, opened, warned):
        progress.apply(event)
    view = _render(progress)
    assert "waiting: quota:sim-rpm" in view
    assert "circuit provider:openai open: 5 consecutive failures" in view
    assert "budget daily: spent 4 of 5" in view

    assert "waiting: quota:sim-rpm" in event_line(waiting)
    assert "breaker=provider:openai" in event_line(opened)
    assert "CIRCUIT_OPENED" in event_line(opened)
    line = event_line(warned)
    assert "BUDGET_WARNING" in line and "budget=daily" in line and "spent=$4.00" in line

    # The wait ends: the reason leaves the row.
    progress.apply(
        _event(6, E.RUN_EVENT_TYPE_STEP_PROGRESS, step_id="ask", step_state=R.STEP_STATE_RUNNING)
    )
    assert "waiting:" not in _render(progress)
    assert progress.steps["ask"].state == R.STEP_STATE_RUNNING


def test_unknown_event_types_never_crash_the_renderer() -> None:
    run = run_pb2.Run(name="runs/abc", workflow="workflows/ask")
    run.steps.add(step_id="ask", agent="llm")
    progress = RunProgress(run)
    strange = [
        _event(1, 999, step_id="ask", step_state=77, message="from the future"),
        _event(2, 998, breaker="x", budget="y"),
        _event(3, E.RUN_EVENT_TYPE_CIRCUIT_HALF_OPEN),
    ]
    for event in strange:
        progress.apply(event)
        assert str(event.sequence) in event_line(event)
    view = _render(progress)
    assert "77" in view and "from the future" in view
    assert "999" in event_line(strange[0])


def test_the_live_view_shows_a_streaming_steps_text_growing() -> None:
    run = run_pb2.Run(name="runs/abc", workflow="workflows/ask")
    run.steps.add(step_id="answer", agent="llm")
    progress = RunProgress(run)
    progress.apply(_event(2, E.RUN_EVENT_TYPE_STEP_STARTED, step_id="answer", attempt=1))

    def delta(index: int, text: str, attempt: int = 1) -> progress_service_pb2.OutputDelta:
        return progress_service_pb2.OutputDelta(
            step_id="answer", item=-1, attempt=attempt, index=index, text=text
        )

    progress.apply_delta(delta(1, "The quick "))
    assert "answer ▸ The quick" in _render(progress)
    progress.apply_delta(delta(2, "brown fox"))
    assert "answer ▸ The quick brown fox" in _render(progress)
    # A retry streams its answer afresh.
    progress.apply_delta(delta(1, "Another", attempt=2))
    assert "answer ▸ Another" in _render(progress)
    assert "brown fox" not in _render(progress)
    # A long answer shows its newest words on one line.
    progress.apply_delta(delta(2, " word" * 100, attempt=2))
    line = next(x for x in _render(progress).splitlines() if x.startswith("answer ▸"))
    assert line.startswith("answer ▸ …") and line.endswith("word")
    # The step's final event ends the stream's line: its output is final.
    progress.apply(
        _event(
            9,
            E.RUN_EVENT_TYPE_STEP_SUCCEEDED,
            step_id="answer",
            step_state=R.STEP_STATE_SUCCEEDED,
        )
    )
    assert "▸" not in _render(progress)
