"""Following a run to its end: a live table on a terminal, one line per event otherwise."""

from __future__ import annotations

from rich.live import Live
from rich.text import Text

from podium.cli.context import Context
from podium.cli.formatting import (
    compact_message_json,
    datetime_of,
    elapsed,
    format_duration,
    format_tokens,
    run_state_text,
    tokens_of,
    value_json,
)
from podium.cli.progress import RunProgress
from podium.cli.render import failure_text, spend_text
from podium.client.enums import event_type_label, run_state_label, step_state_label
from podium.client.money import format_usd
from podium.v1 import event_pb2, run_pb2

__all__ = ["event_line", "follow_run"]


def follow_run(ctx: Context, run: str, after_sequence: int = 0) -> int:
    """Show the run's progress until it ends, then its outcome; 0 only if it succeeded."""
    client = ctx.client()
    snapshot = client.get_run(run)
    if ctx.json:
        return _follow_as_json_lines(ctx, snapshot.name, after_sequence)
    progress = RunProgress(snapshot)
    # The view replays the whole log so its totals are exact; `after_sequence` only limits
    # which events are printed as lines.
    if ctx.out.is_terminal:
        # The live view also shows streaming steps' text as it grows.
        live = client.watch_with_deltas(snapshot.name, after_sequence=0)
        with Live(progress, console=ctx.out, refresh_per_second=8, transient=False):
            for item in live:
                if isinstance(item, event_pb2.RunEvent):
                    progress.apply(item)
                else:
                    progress.apply_delta(item)
                if progress.steps_missing_item_totals():
                    # Item events do not carry the fan-out's size; the run record does.
                    progress.set_item_totals(client.get_run(snapshot.name))
    else:
        for event in client.watch(snapshot.name, after_sequence=0):
            progress.apply(event)
            if event.sequence > after_sequence:
                ctx.print_plain(event_line(event))
    final = client.get_run(snapshot.name)
    # The live view's last frame already ends with the run's state, time and spend.
    _print_outcome(ctx, final, progress, summary=not ctx.out.is_terminal)
    return 0 if final.state == run_pb2.RUN_STATE_SUCCEEDED else 1


def _follow_as_json_lines(ctx: Context, run: str, after_sequence: int) -> int:
    """One event per line in the proto JSON mapping, for `jq` and log shippers; the exit code
    still says whether the run succeeded."""
    client = ctx.client()
    for event in client.watch(run, after_sequence=after_sequence):
        ctx.print_plain(compact_message_json(event))
    final = client.get_run(run)
    return 0 if final.state == run_pb2.RUN_STATE_SUCCEEDED else 1


def event_line(event: event_pb2.RunEvent) -> str:
    """ "  7 12:00:03.120 STEP_SUCCEEDED  extract  SUCCEEDED  tokens=1,200 cost=$0.0012 ..." """
    moment = datetime_of(event.time)
    when = moment.astimezone().strftime("%H:%M:%S.%f")[:-3] if moment else "-"
    if event.step_id:
        state = step_state_label(event.step_state) if event.step_state else "-"
    else:
        state = run_state_label(event.run_state) if event.run_state else "-"
    parts = [
        f"{event.sequence:>4}",
        when,
        f"{event_type_label(event.type):<15}",
        f"{event.step_id or '-':<16}",
        f"{state:<10}",
    ]
    details = []
    if event.attempt > 1:
        details.append(f"attempt={event.attempt}")
    if event.type == event_pb2.RUN_EVENT_TYPE_STEP_PROGRESS:
        details.append(f"progress={event.progress:.0%}")
    if event.type == event_pb2.RUN_EVENT_TYPE_LLM_CALL:
        details.append(f"{event.provider}/{event.model}")
    if event.breaker:
        details.append(f"breaker={event.breaker}")
    if event.budget:
        details.append(f"budget={event.budget}")
    if event.HasField("usage"):
        details.append(f"tokens={format_tokens(tokens_of(event.usage))}")
    if event.HasField("cost"):
        # A budget warning's amount is the budget's spend so far, not a cost of this event.
        label = "spent" if event.type == event_pb2.RUN_EVENT_TYPE_BUDGET_WARNING else "cost"
        details.append(f"{label}={format_usd(event.cost)}")
    if event.price_version:
        details.append(f"prices={event.price_version}")
    if event.type == event_pb2.RUN_EVENT_TYPE_STEP_WAITING:
        due = datetime_of(event.due_time)
        if due:
            details.append(f"until={due.astimezone().strftime('%H:%M:%S')}")
    if event.type == event_pb2.RUN_EVENT_TYPE_CALLBACK_ISSUED and event.callback_token:
        # Shown to whoever may watch the run: they hand it to the system that calls back.
        details.append(f"token={event.callback_token}")
    failure = failure_text(event.failure) if event.HasField("failure") else ""
    if failure:
        details.append(failure)
    # A failure's event usually repeats its failure's message: print it once.
    if event.message and " ".join(event.message.split()) not in " ".join(failure.split()):
        waiting = event.type == event_pb2.RUN_EVENT_TYPE_STEP_WAITING
        details.append(f"waiting: {event.message}" if waiting else event.message)
    # One line per event, whatever the message holds, so logs stay greppable.
    return " ".join(" ".join(parts + details).split("\n")).rstrip()


def _print_outcome(ctx: Context, run: run_pb2.Run, progress: RunProgress, *, summary: bool) -> None:
    if summary:
        label, style = run_state_text(run.state)
        duration = format_duration(elapsed(run.start_time, run.end_time))
        line = Text.assemble("run ", run.name, " ", (label, style), f" in {duration}")
        ctx.out.print(line, soft_wrap=True, highlight=False)
    if run.HasField("output"):
        ctx.print_plain("output:")
        ctx.print_plain(value_json(run.output))
    if run.HasField("failure"):
        ctx.print_plain(f"failure: {failure_text(run.failure)}")
    for step in run.steps:
        if step.state == run_pb2.STEP_STATE_FAILED and step.HasField("failure"):
            ctx.print_plain(f"step {step.step_id} failed: {failure_text(step.failure)}")
    if not summary:
        return
    has_spend = run.HasField("usage") or run.HasField("cost")
    if has_spend:
        ctx.print_plain(f"spend: {spend_text(run.usage, run.cost)}")
    else:
        ctx.print_plain(
            f"spend: {format_tokens(progress.tokens)} tokens, {format_usd(progress.cost)}"
        )
