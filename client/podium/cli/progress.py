"""The state of a watched run, folded from its events, and its live rich rendering."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from rich.console import Console, ConsoleOptions, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from podium.cli.formatting import (
    datetime_of,
    format_duration,
    format_tokens,
    run_state_text,
    state_style,
    tokens_of,
)
from podium.client.enums import step_state_label
from podium.client.money import format_usd, to_decimal
from podium.v1 import event_pb2, progress_service_pb2, run_pb2

__all__ = ["NOTE_EVENTS", "RunProgress", "StepProgress", "governance_note"]

_E = event_pb2
_STATE_OF_EVENT = {
    _E.RUN_EVENT_TYPE_STEP_STARTED: run_pb2.STEP_STATE_RUNNING,
    _E.RUN_EVENT_TYPE_STEP_PROGRESS: run_pb2.STEP_STATE_RUNNING,
    _E.RUN_EVENT_TYPE_STEP_SUCCEEDED: run_pb2.STEP_STATE_SUCCEEDED,
    _E.RUN_EVENT_TYPE_STEP_FAILED: run_pb2.STEP_STATE_FAILED,
    _E.RUN_EVENT_TYPE_STEP_SKIPPED: run_pb2.STEP_STATE_SKIPPED,
    _E.RUN_EVENT_TYPE_STEP_CANCELLED: run_pb2.STEP_STATE_CANCELLED,
}
_STEP_TOTAL_EVENTS = frozenset({_E.RUN_EVENT_TYPE_STEP_SUCCEEDED, _E.RUN_EVENT_TYPE_STEP_FAILED})
# Run-wide news shown under the live table rather than in a step's row.
NOTE_EVENTS = frozenset(
    {
        _E.RUN_EVENT_TYPE_CIRCUIT_OPENED,
        _E.RUN_EVENT_TYPE_CIRCUIT_HALF_OPEN,
        _E.RUN_EVENT_TYPE_CIRCUIT_CLOSED,
        _E.RUN_EVENT_TYPE_BUDGET_WARNING,
    }
)
_CIRCUIT_STATES = {
    _E.RUN_EVENT_TYPE_CIRCUIT_OPENED: ("open", "bold red"),
    _E.RUN_EVENT_TYPE_CIRCUIT_HALF_OPEN: ("half-open", "bold yellow"),
    _E.RUN_EVENT_TYPE_CIRCUIT_CLOSED: ("closed", "bold green"),
}
_MAX_NOTES = 5
# Characters of a streaming step's text kept, and shown on its line.
_STREAM_KEPT = 4096
_STREAM_SHOWN = 100
_FINISHED_STEP_STATES = frozenset(
    {
        run_pb2.STEP_STATE_SUCCEEDED,
        run_pb2.STEP_STATE_FAILED,
        run_pb2.STEP_STATE_SKIPPED,
        run_pb2.STEP_STATE_CANCELLED,
    }
)


@dataclass
class StepProgress:
    step_id: str
    agent: str = ""
    state: int = run_pb2.STEP_STATE_PENDING
    attempt: int = 0
    started: datetime | None = None
    ended: datetime | None = None
    fraction: float = 0.0
    message: str = ""
    tokens: int = 0
    cost: Decimal = field(default_factory=Decimal)
    # The message is a STEP_WAITING reason, cleared by the step's next event.
    waiting: bool = False
    # Fan-out items: how many in all (0 until known), started, succeeded and failed.
    items_total: int = 0
    items_started: int = 0
    items_succeeded: int = 0
    items_failed: int = 0

    @property
    def fans_out(self) -> bool:
        return bool(self.items_total or self.items_started)

    @property
    def finished(self) -> bool:
        return self.state in _FINISHED_STEP_STATES

    def elapsed(self, now: datetime) -> float | None:
        if self.started is None:
            return None
        return ((self.ended or now) - self.started).total_seconds()


class RunProgress:
    """Folds RunEvents into per-step rows and run totals.

    Built by replaying the run from sequence 0, so the totals are exact: LLM_CALL events add to
    a step as they settle, and the step's own STEP_SUCCEEDED/FAILED total replaces the sum.
    """

    def __init__(self, run: run_pb2.Run) -> None:
        self.name = run.name
        self.workflow = run.workflow
        self.state: int = run.state
        self.started = datetime_of(run.start_time) or datetime_of(run.create_time)
        self.ended: datetime | None = None
        self.failure = ""
        # Rows in definition order, known before any event so that every step shows at once.
        self.steps: dict[str, StepProgress] = {
            step.step_id: StepProgress(step.step_id, agent=step.agent, items_total=step.items_total)
            for step in run.steps
        }
        self._unattributed_tokens = 0
        self._unattributed_cost = Decimal()
        self._run_total: tuple[int, Decimal] | None = None
        # Breaker changes and budget warnings, newest last, shown under the table.
        self.notes: list[Text] = []
        # What each streaming step's running attempt streamed so far, by step id.
        self.streamed: dict[str, str] = {}
        self._streaming: dict[str, tuple[int, int]] = {}

    @property
    def tokens(self) -> int:
        if self._run_total is not None:
            return self._run_total[0]
        return sum(s.tokens for s in self._rows()) + self._unattributed_tokens

    @property
    def cost(self) -> Decimal:
        if self._run_total is not None:
            return self._run_total[1]
        return sum((s.cost for s in self._rows()), self._unattributed_cost)

    def apply(self, event: event_pb2.RunEvent) -> None:
        if event.run_state:
            self.state = event.run_state
        when = datetime_of(event.time)
        if event.type == _E.RUN_EVENT_TYPE_RUN_STARTED and when:
            self.started = when
        if event.HasField("failure") and not event.step_id:
            self.failure = " ".join(f"{event.failure.type}: {event.failure.message}".split())
        if event.type in (
            _E.RUN_EVENT_TYPE_RUN_SUCCEEDED,
            _E.RUN_EVENT_TYPE_RUN_FAILED,
            _E.RUN_EVENT_TYPE_RUN_CANCELLED,
        ):
            self.ended = when
            if event.HasField("usage") or event.HasField("cost"):
                self._run_total = (tokens_of(event.usage), to_decimal(event.cost))
        if event.type in NOTE_EVENTS:
            note = governance_note(event)
            if note is not None:
                self.notes = [*self.notes, note][-_MAX_NOTES:]
            return
        if event.step_id:
            self._apply_step(event, when)
        elif event.type == _E.RUN_EVENT_TYPE_LLM_CALL:
            self._unattributed_tokens += tokens_of(event.usage)
            self._unattributed_cost += to_decimal(event.cost)

    def apply_delta(self, delta: progress_service_pb2.OutputDelta) -> None:
        """A streaming step's text grows (a new attempt or item starts it afresh)."""
        source = (delta.item, delta.attempt)
        if self._streaming.get(delta.step_id) != source:
            self._streaming[delta.step_id] = source
            self.streamed[delta.step_id] = ""
        self.streamed[delta.step_id] = (self.streamed[delta.step_id] + delta.text)[-_STREAM_KEPT:]

    def _apply_step(self, event: event_pb2.RunEvent, when: datetime | None) -> None:
        step = self.steps.get(event.step_id)
        if step is None:
            # A step the definition did not list (the server may add some): show it anyway.
            step = self.steps[event.step_id] = StepProgress(event.step_id)
        state = event.step_state or _STATE_OF_EVENT.get(event.type)
        if state:
            step.state = state
        if event.attempt:
            step.attempt = event.attempt
        if event.type == _E.RUN_EVENT_TYPE_STEP_STARTED:
            # A retry starts the clock and the bar again.
            step.started, step.ended, step.fraction = when, None, 0.0
        elif event.type == _E.RUN_EVENT_TYPE_ITEM_STARTED:
            # A fan-out has no STEP_STARTED: its first item starts the clock.
            step.started = step.started or when
            step.items_started += 1
        elif event.type == _E.RUN_EVENT_TYPE_ITEM_SUCCEEDED:
            step.items_succeeded += 1
        elif event.type == _E.RUN_EVENT_TYPE_ITEM_FAILED:
            step.items_failed += 1
        elif event.type == _E.RUN_EVENT_TYPE_STEP_PROGRESS:
            step.fraction = min(max(event.progress, 0.0), 1.0)
        elif event.type == _E.RUN_EVENT_TYPE_LLM_CALL:
            step.tokens += tokens_of(event.usage)
            step.cost += to_decimal(event.cost)
        if step.waiting:
            step.waiting, step.message = False, ""
        # Flattened: a table row has room for one line.
        if event.type == _E.RUN_EVENT_TYPE_STEP_WAITING:
            step.waiting = True
            step.message = _waiting_text(event)
        elif event.message:
            step.message = " ".join(event.message.split())
        if event.HasField("failure"):
            step.message = " ".join(f"{event.failure.type}: {event.failure.message}".split())
        if event.type in _STEP_TOTAL_EVENTS and (event.HasField("usage") or event.HasField("cost")):
            step.tokens, step.cost = tokens_of(event.usage), to_decimal(event.cost)
        if step.finished:
            # Its output is final now: the stream's text has done its job.
            self.streamed.pop(event.step_id, None)
            step.ended = step.ended or when
            if not event.HasField("failure"):
                # What the step said while it ran ("resumed after quota:…") is stale once it
                # ends; only the final event's own message (a skip's reason) stays.
                step.message = " ".join(event.message.split())
            if step.state == run_pb2.STEP_STATE_SUCCEEDED:
                step.fraction = 1.0

    def steps_missing_item_totals(self) -> list[str]:
        """Fan-out steps whose item count the events have not told (GetRun has it)."""
        return [s.step_id for s in self._rows() if s.items_started and not s.items_total]

    def set_item_totals(self, run: run_pb2.Run) -> None:
        for step in run.steps:
            row = self.steps.get(step.step_id)
            if row is not None and step.items_total:
                row.items_total = step.items_total

    def _rows(self) -> list[StepProgress]:
        # A copy: rich's refresh thread renders while the main thread applies events.
        return list(self.steps.values())

    def elapsed(self, now: datetime | None = None) -> float | None:
        if self.started is None:
            return None
        return ((self.ended or now or datetime.now(UTC)) - self.started).total_seconds()

    def total_line(self, now: datetime | None = None) -> Text:
        label, style = run_state_text(self.state)
        return Text.assemble(
            ("run ", "bold"),
            (self.name.removeprefix("runs/"), "bold"),
            "  ",
            (label, style),
            f"  elapsed {format_duration(self.elapsed(now))}",
            f"  tokens {format_tokens(self.tokens)}",
            f"  cost {format_usd(self.cost)}",
        )

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        """Rendered again on every refresh, so running steps' elapsed times keep ticking."""
        now = datetime.now(UTC)
        width = options.max_width
        # Every column has a width that fits the terminal, so rich never has to squeeze:
        # on a narrow one the agent column goes (then the try and token counts), the bar and
        # the step names shorten and the message gets what is left; the state and the
        # figures are never cut (a cut "SUCCEED…" says nothing).
        show_agent = width >= _AGENT_FROM_WIDTH
        show_counts = width >= _COUNTS_FROM_WIDTH
        bar = _BAR_WIDTH if width >= _WIDE else _NARROW_BAR_WIDTH
        figures = [("ELAPSED", 7), *([("TOKENS", 6)] if show_counts else []), ("COST", 7)]
        fixed = _STATE_WIDTH + bar + sum(w for _, w in figures)
        fixed += (12 if show_agent else 0) + (3 if show_counts else 0)
        columns = 5 + len(figures) - 1 + int(show_agent) + int(show_counts)
        room = width - fixed - 2 * (columns - 1)
        step_width = max(6, min(_STEP_WIDTH, room - _MIN_MESSAGE_WIDTH))
        message_width = max(0, room - step_width)
        table = Table(box=None, header_style="bold", pad_edge=False, expand=False)
        table.add_column("STEP", overflow="ellipsis", no_wrap=True, max_width=step_width)
        if show_agent:
            table.add_column("AGENT", overflow="ellipsis", no_wrap=True, max_width=12)
        table.add_column("STATE", no_wrap=True, min_width=_STATE_WIDTH)
        if show_counts:
            table.add_column("TRY", justify="right", no_wrap=True, width=3)
        table.add_column("PROGRESS", no_wrap=True, width=bar)
        for column, figure_width in figures:
            table.add_column(column, justify="right", no_wrap=True, min_width=figure_width)
        table.add_column("MESSAGE", overflow="ellipsis", no_wrap=True, max_width=message_width)
        for step in self._rows():
            label = step_state_label(step.state)
            cells: list[RenderableType] = [step.step_id]
            if show_agent:
                cells.append(step.agent)
            cells.append(Text(label, style=state_style(label)))
            if show_counts:
                cells.append(str(step.attempt or "-"))
            cells += [_progress_cell(step), format_duration(step.elapsed(now))]
            if show_counts:
                cells.append(format_tokens(step.tokens))
            cells += [format_usd(step.cost), step.message]
            table.add_row(*cells)
        yield table
        yield Text()
        yield self.total_line(now)
        yield from self.notes
        for step_id, text in list(self.streamed.items()):
            yield streamed_text(step_id, text)


# Wide enough for every state but WAITING_APPROVAL, which gives way last of all.
_STATE_WIDTH = len("SUCCEEDED")
_BAR_WIDTH = 14
_NARROW_BAR_WIDTH = 10
_WIDE = 100
_STEP_WIDTH = 24
_MIN_MESSAGE_WIDTH = 8
# Below this many columns the try and token counts are left out too.
_COUNTS_FROM_WIDTH = 72
# Below this many columns the agent column is left out.
_AGENT_FROM_WIDTH = 110


def _progress_cell(step: StepProgress) -> RenderableType:
    """A fan-out's item counts; a bar for a step that reports progress; a pulsing bar for one
    that runs without reporting (an empty bar would look stuck); nothing before it starts."""
    if step.fans_out:
        done = step.items_succeeded + step.items_failed
        total = f"/{step.items_total}" if step.items_total else ""
        failed = f" ({step.items_failed} failed)" if step.items_failed else ""
        return Text(f"{done}{total} items{failed}", style="red" if step.items_failed else "")
    if step.state == run_pb2.STEP_STATE_RUNNING and step.fraction == 0.0:
        return ProgressBar(total=None, pulse=True, width=None, complete_style="yellow")
    if step.state == run_pb2.STEP_STATE_PENDING:
        return Text("")
    return ProgressBar(
        total=1.0,
        completed=step.fraction,
        width=None,
        complete_style="yellow",
        finished_style="green",
    )


def streamed_text(step_id: str, text: str) -> Text:
    """ "answer ▸ …the last words the model streamed" on one line."""
    flat = " ".join(text.split())
    shown = flat if len(flat) <= _STREAM_SHOWN else "…" + flat[-_STREAM_SHOWN:]
    return Text.assemble((f"{step_id} ▸ ", "bold cyan"), shown)


def governance_note(event: event_pb2.RunEvent) -> Text | None:
    """ "circuit provider:openai open: 5 failures" or "budget daily: spent ...", styled; None
    for other events."""
    cause = " ".join(event.message.split())
    if event.type in _CIRCUIT_STATES:
        state, style = _CIRCUIT_STATES[event.type]
        return Text.assemble(
            ("circuit ", style),
            (event.breaker or "?", style),
            (f" {state}", style),
            f": {cause}" if cause else "",
        )
    if event.type == _E.RUN_EVENT_TYPE_BUDGET_WARNING:
        spent = f"spent {format_usd(event.cost)}" if event.HasField("cost") else ""
        return Text.assemble(
            ("budget ", "bold yellow"),
            (event.budget or "?", "bold yellow"),
            ": ",
            cause or spent or "warning threshold crossed",
        )
    return None


def _waiting_text(event: event_pb2.RunEvent) -> str:
    """ "waiting: quota:sim-rpm", "waiting until 12:00:03", or both."""
    reason = " ".join(event.message.split())
    due = datetime_of(event.due_time)
    until = f" until {due.astimezone().strftime('%H:%M:%S')}" if due else ""
    return f"waiting{until}: {reason}" if reason else f"waiting{until}"
