"""`podium insights WORKFLOW`: statistics and recommendations from history."""

from __future__ import annotations

import argparse
from typing import Any

from google.protobuf import duration_pb2
from rich.table import Table

from podium.cli import inputs
from podium.cli.context import Context
from podium.cli.parser import ArgumentParser, json_option, leaf_options
from podium.client.money import format_usd, to_decimal
from podium.v1 import control_service_pb2

__all__ = ["insights_lines", "register"]

_KINDS = {
    control_service_pb2.RECOMMENDATION_KIND_BOTTLENECK: "bottleneck",
    control_service_pb2.RECOMMENDATION_KIND_FLAKY: "flaky",
    control_service_pb2.RECOMMENDATION_KIND_COST: "cost",
    control_service_pb2.RECOMMENDATION_KIND_DEPENDENCY: "dependency",
    control_service_pb2.RECOMMENDATION_KIND_CONCURRENCY: "concurrency",
    control_service_pb2.RECOMMENDATION_KIND_CACHE: "cache",
}


def register(commands: Any) -> None:
    insights: ArgumentParser = commands.add_parser(
        "insights",
        parents=[leaf_options(), json_option()],
        help="per-step statistics and recommendations from a workflow's finished runs",
    )
    insights.add_argument("workflow", metavar="WORKFLOW", help="workflow id or workflows/ID")
    insights.add_argument(
        "--window",
        type=inputs.age,
        default=0.0,
        metavar="AGE",
        help="only runs created within AGE: 7d, 12h, 90m (default: every stored run)",
    )
    insights.set_defaults(handler=insights_command)


def insights_command(args: argparse.Namespace, ctx: Context) -> int:
    found = ctx.client().workflow_insights(args.workflow, args.window)
    if ctx.json:
        ctx.print_message(found)
        return 0
    out = ctx.out
    for line in insights_lines(found)[:2]:
        out.print(line, highlight=False, soft_wrap=True, markup=False)
    if found.steps:
        out.print(_steps_table(found))
    for line in insights_lines(found)[2:]:
        out.print(line, highlight=False, soft_wrap=True, markup=False)
    return 0


def insights_lines(found: control_service_pb2.WorkflowInsights) -> list[str]:
    """The summary (two lines), then one line per recommendation and its details."""
    path = " -> ".join(found.critical_path) or "none"
    lines = [
        f"{found.workflow}: {found.note}; runs p50 {_seconds(found.p50_run_duration)}, "
        f"p95 {_seconds(found.p95_run_duration)}, cost p50 "
        f"{format_usd(to_decimal(found.p50_run_cost))}",
        f"critical path: {path} ({_seconds(found.critical_path_duration)})",
    ]
    if found.enough_history and not found.recommendations:
        lines.append("no recommendations: nothing in this history calls for a change")
    for item in found.recommendations:
        saving = []
        if item.estimated_time_saving.ToNanoseconds():
            saving.append(f"{_seconds(item.estimated_time_saving)} a run")
        cost = to_decimal(item.estimated_cost_saving)
        if cost:
            saving.append(f"{format_usd(cost)} a run")
        lines.append(
            f"[{_KINDS.get(item.kind, 'other')}] {item.summary}"
            + (f" (saves about {', '.join(saving)})" if saving else "")
        )
        lines.append(f"    evidence: {item.evidence}")
        if item.suggestion:
            lines.append(f"    suggestion: {item.suggestion}")
    return lines


def _steps_table(found: control_service_pb2.WorkflowInsights) -> Table:
    table = Table("step", "runs", "p50", "p95", "slot wait p95", "retries", "failed", "cost")
    for step in found.steps:
        table.add_row(
            step.step_id,
            str(step.executions),
            _seconds(step.p50_duration),
            _seconds(step.p95_duration),
            _seconds(step.p95_queue_wait),
            f"{step.retry_rate:.0%}",
            f"{step.failure_rate:.0%}",
            f"{step.cost_share:.0%}",
        )
    return table


def _seconds(value: duration_pb2.Duration) -> str:
    seconds = value.ToNanoseconds() / 1e9
    return f"{seconds:.3g}s" if seconds >= 1 or seconds == 0 else f"{seconds * 1000:.3g}ms"
