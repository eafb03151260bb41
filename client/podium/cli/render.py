"""Readable rich renderings of workflows and runs (the non --json output)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from google.protobuf import duration_pb2
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from podium.cli.formatting import (
    elapsed,
    format_duration,
    format_time,
    format_tokens,
    run_state_text,
    step_state_text,
    tokens_of,
    value_json,
)
from podium.client.money import format_usd
from podium.v1 import common_pb2, run_pb2, workflow_pb2, workflow_service_pb2

__all__ = [
    "failure_text",
    "run_details",
    "runs_table",
    "spend_text",
    "validation",
    "workflow_details",
    "workflows_table",
]


def workflows_table(workflows: Iterable[workflow_pb2.Workflow]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("WORKFLOW", "VERSION", "STEPS", "CREATED", "DESCRIPTION"):
        table.add_column(column)
    for workflow in workflows:
        table.add_row(
            workflow.name,
            str(workflow.version),
            str(len(workflow.spec.steps)),
            format_time(workflow.create_time),
            _one_line(workflow.spec.description),
        )
    return table


def workflow_details(workflow: workflow_pb2.Workflow) -> RenderableType:
    spec = workflow.spec
    header = _fields(
        ("workflow", f"{workflow.name} (version {workflow.version})"),
        ("created", format_time(workflow.create_time)),
        ("description", _one_line(spec.description) or "-"),
        ("max concurrency", str(spec.max_concurrency or "server default")),
        ("labels", _pairs(spec.labels) or "-"),
        ("output", _pairs(spec.output) or "outputs of the final steps"),
    )
    steps = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("STEP", "AGENT", "DEPENDS ON", "INPUT", "DESCRIPTION"):
        steps.add_column(column)
    for step in spec.steps:
        steps.add_row(
            step.id,
            step.agent,
            ", ".join(step.depends_on) or "-",
            _pairs(step.input) or "-",
            _one_line(step.description),
        )
    return Group(header, Text(), steps)


def validation(response: workflow_service_pb2.ValidateWorkflowResponse) -> RenderableType:
    levels = Table(box=None, header_style="bold", pad_edge=False)
    levels.add_column("LEVEL")
    levels.add_column("STEPS (may run together)")
    for index, level in enumerate(response.levels):
        levels.add_row(str(index), ", ".join(level.step_ids))
    path = " -> ".join(response.critical_path) or "-"
    return Group(
        Text("valid", style="bold green"),
        levels,
        Text.assemble(("critical path: ", "bold"), path),
        Text.assemble(("estimate: ", "bold"), estimate_text(response.estimate)),
    )


def estimate_text(estimate: workflow_service_pb2.Estimate) -> str:
    """One line: p50/p95 duration and cost from history, or the price table's bound."""
    if estimate.source == workflow_service_pb2.ESTIMATE_SOURCE_HISTORY:
        return (
            f"duration p50 {_secs(estimate.p50_duration)}, p95 {_secs(estimate.p95_duration)}; "
            f"cost p50 {format_usd(estimate.p50_cost)}, p95 {format_usd(estimate.p95_cost)} "
            f"({estimate.note})"
        )
    if estimate.source == workflow_service_pb2.ESTIMATE_SOURCE_PRICE_TABLE:
        return f"cost at most {format_usd(estimate.max_cost)} ({estimate.note})"
    return "none"


def _secs(value: duration_pb2.Duration) -> str:
    return f"{value.ToNanoseconds() / 1e9:.3g}s"


def runs_table(runs: Iterable[run_pb2.Run]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("RUN", "WORKFLOW", "STATE", "CREATED", "DURATION", "TOKENS", "COST"):
        table.add_column(column, justify="right" if column in ("TOKENS", "COST") else "left")
    for run in runs:
        label, style = run_state_text(run.state)
        table.add_row(
            run.name,
            f"{run.workflow} v{run.workflow_version}",
            Text(label, style=style),
            format_time(run.create_time),
            format_duration(elapsed(run.start_time, run.end_time)),
            format_tokens(tokens_of(run.usage)),
            format_usd(run.cost),
        )
    return table


def run_details(run: run_pb2.Run, children: Iterable[run_pb2.Run] = ()) -> RenderableType:
    """A run, its steps and the child runs its `workflow` steps started."""
    label, style = run_state_text(run.state)
    header = _fields(
        ("run", run.name),
        ("state", Text(label, style=style)),
        ("workflow", f"{run.workflow} (version {run.workflow_version})"),
        ("created", format_time(run.create_time)),
        ("started", format_time(run.start_time)),
        ("ended", format_time(run.end_time)),
        ("duration", format_duration(elapsed(run.start_time, run.end_time))),
        ("labels", _pairs(run.labels) or "-"),
        ("spend", spend_text(run.usage, run.cost)),
        ("max cost", format_usd(run.max_cost) if run.HasField("max_cost") else "-"),
        ("parent", f"{run.parent_run} (step {run.parent_step})" if run.parent_run else "-"),
        (
            "schedule",
            f"{run.schedule} (nominal time {format_time(run.nominal_time)})"
            if run.schedule
            else "-",
        ),
    )
    parts: list[RenderableType] = [header, Text(), _steps_table(run.steps)]
    children = list(children)
    if children:
        parts += [Text(), Text("child runs", style="bold"), _children_table(children)]
    if run.HasField("output"):
        parts += [Text("output", style="bold"), Text(value_json(run.output))]
    if run.HasField("failure"):
        parts.append(Text.assemble(("failure: ", "bold red"), failure_text(run.failure)))
    return Group(*parts)


def _children_table(children: Iterable[run_pb2.Run]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("STEP", "RUN", "WORKFLOW", "STATE", "COST"):
        table.add_column(column, justify="right" if column == "COST" else "left")
    for child in children:
        label, style = run_state_text(child.state)
        table.add_row(
            child.parent_step,
            child.name,
            f"{child.workflow} v{child.workflow_version}",
            Text(label, style=style),
            format_usd(child.cost),
        )
    return table


def spend_text(usage: common_pb2.Usage, cost: common_pb2.Money) -> str:
    return (
        f"{format_tokens(tokens_of(usage))} tokens "
        f"(in {format_tokens(usage.input_tokens)}, out {format_tokens(usage.output_tokens)}, "
        f"{usage.calls} call{'' if usage.calls == 1 else 's'}), {format_usd(cost)}"
    )


def failure_text(failure: common_pb2.Failure) -> str:
    retry = " (retryable)" if failure.retryable else ""
    return f"{failure.type}: {failure.message}{retry}" if failure.type else failure.message


def _steps_table(steps: Iterable[run_pb2.StepRun]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("STEP", "AGENT", "STATE", "ATTEMPTS", "DURATION", "TOKENS", "COST", "NOTE"):
        right = column in ("ATTEMPTS", "TOKENS", "COST")
        table.add_column(column, justify="right" if right else "left")
    for step in steps:
        label, style = step_state_text(step.state)
        note = failure_text(step.failure) if step.HasField("failure") else step.reason
        table.add_row(
            step.step_id,
            step.agent,
            Text(label, style=style),
            str(len(step.attempts)),
            format_duration(elapsed(step.start_time, step.end_time)),
            format_tokens(tokens_of(step.usage)),
            format_usd(step.cost),
            note,
        )
    return table


def _fields(*rows: tuple[str, str | Text]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for name, value in rows:
        table.add_row(name, value)
    return table


def _pairs(mapping: Mapping[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(mapping.items()))


def _one_line(text: str) -> str:
    # YAML block scalars end in a newline, which a table would show as an empty row.
    return " ".join(text.split())
