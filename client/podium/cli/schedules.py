"""`podium schedules create|list|get|pause|resume|delete|trigger`: workflows started at
cron or interval times."""

from __future__ import annotations

import argparse
from typing import Any

from google.protobuf import duration_pb2
from rich.cells import cell_len
from rich.table import Table

from podium.cli import inputs
from podium.cli.context import Context
from podium.cli.formatting import format_duration, format_time
from podium.cli.parser import ArgumentParser, json_option, leaf_options
from podium.client.schedules import OVERLAP_POLICIES, overlap_name, schedule_name
from podium.v1 import schedule_service_pb2

__all__ = ["register"]

_NAME_HELP = "schedule id or schedules/ID"


def register(commands: Any) -> None:
    group: ArgumentParser = commands.add_parser(
        "schedules", help="start runs of a workflow at cron or interval times"
    )
    sub = group.add_subparsers(dest="schedules_command", metavar="COMMAND", required=True)
    read = [leaf_options(), json_option()]

    create = sub.add_parser("create", parents=read, help="create a schedule")
    create.add_argument(
        "--workflow", required=True, metavar="WORKFLOW", help="workflow id or workflows/ID"
    )
    timing = create.add_mutually_exclusive_group(required=True)
    timing.add_argument(
        "--cron",
        metavar="EXPR",
        help="five fields (minute hour day-of-month month day-of-week), in --timezone's wall time",
    )
    timing.add_argument(
        "--every",
        type=inputs.age,
        metavar="AGE",
        help="an interval from the schedule's creation: 30s, 5m, 1h, 1d",
    )
    create.add_argument(
        "--timezone", default="", metavar="ZONE", help="IANA zone of --cron (default: UTC)"
    )
    create.add_argument(
        "--input", type=inputs.run_input, default=None, help="each run's input: JSON or @FILE"
    )
    create.add_argument(
        "--overlap",
        choices=OVERLAP_POLICIES,
        default="skip",
        help="a fire while a run of the schedule still runs: skip it (default), buffer one"
        " to start when the run ends, or allow another run",
    )
    create.add_argument(
        "--catch-up",
        type=inputs.age,
        default=0.0,
        metavar="AGE",
        help="fires missed by up to this much (a downtime) still start late; older ones are"
        " skipped and counted (default: 0)",
    )
    create.add_argument(
        "--jitter",
        type=inputs.age,
        default=0.0,
        metavar="AGE",
        help="start each fire up to this much after its nominal time (default: 0)",
    )
    create.add_argument(
        "--label",
        type=inputs.label,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label of every run it starts (repeatable)",
    )
    create.add_argument("--workflow-version", type=int, default=0, help="default: latest")
    create.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="print only the new schedule's name (for scripts: SCHEDULE=$(podium schedules"
        " create ... -q))",
    )
    create.set_defaults(handler=create_schedule)

    listing = sub.add_parser("list", parents=read, help="list schedules")
    listing.set_defaults(handler=list_schedules)

    for command, handler, text in (
        ("get", get_schedule, "show a schedule"),
        ("pause", pause_schedule, "pause a schedule: it fires nothing until resumed"),
        ("resume", resume_schedule, "resume from the next nominal time after now"),
        ("delete", delete_schedule, "delete a schedule (its runs stay)"),
        ("trigger", trigger_schedule, "start a run now, even if paused"),
    ):
        parser = sub.add_parser(command, parents=read, help=text)
        parser.add_argument("name", metavar="SCHEDULE", help=_NAME_HELP)
        parser.set_defaults(handler=handler)


def _seconds(duration: duration_pb2.Duration) -> float:
    return duration.ToNanoseconds() / 1e9


def _timing(schedule: schedule_service_pb2.Schedule) -> str:
    if schedule.cron:
        return f"cron {schedule.cron} ({schedule.time_zone or 'UTC'})"
    return f"every {format_duration(_seconds(schedule.interval))}"


def _state(schedule: schedule_service_pb2.Schedule) -> str:
    return "paused" if schedule.paused else "active"


def create_schedule(args: argparse.Namespace, ctx: Context) -> int:
    schedule = ctx.client().create_schedule(
        args.workflow,
        cron=args.cron or "",
        interval_seconds=args.every,
        time_zone=args.timezone,
        input=args.input,
        overlap=args.overlap,
        catch_up_window_seconds=args.catch_up,
        jitter_seconds=args.jitter,
        labels=dict(args.label),
        workflow_version=args.workflow_version,
    )
    if ctx.json:
        ctx.print_message(schedule)
    elif args.quiet:
        ctx.print_plain(schedule.name)
    else:
        ctx.out.print(
            f"created {schedule.name}: {_timing(schedule)},"
            f" next fire {format_time(schedule.next_fire_time)}",
            highlight=False,
        )
    return 0


def list_schedules(args: argparse.Namespace, ctx: Context) -> int:
    schedules = list(ctx.client().list_schedules())
    if ctx.json:
        ctx.print_message(schedule_service_pb2.ListSchedulesResponse(schedules=schedules))
        return 0
    if not schedules:
        ctx.out.print("no schedules")
        return 0
    headers = ("SCHEDULE", "WORKFLOW", "TIMING", "OVERLAP", "STATE", "NEXT FIRE", "MISSED")
    rows = [
        (
            schedule.name,
            schedule.workflow,
            _timing(schedule),
            overlap_name(schedule.overlap_policy),
            _state(schedule),
            format_time(schedule.next_fire_time),
            str(schedule.missed_fires),
        )
        for schedule in schedules
    ]
    widths = [max(cell_len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    if sum(widths) + 2 * (len(widths) - 1) <= ctx.out.width:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for header in headers:
            table.add_column(
                header, no_wrap=True, justify="right" if header == "MISSED" else "left"
            )
        for row in rows:
            table.add_row(*row)
        ctx.out.print(table)
        return 0
    # Too narrow for the table (80 columns is): one block per schedule instead of
    # a table whose cells rich would cut, names included.
    for index, schedule in enumerate(schedules):
        if index:
            ctx.out.print()
        ctx.out.print(_details(schedule, brief=True))
    return 0


def get_schedule(args: argparse.Namespace, ctx: Context) -> int:
    schedule = ctx.client().get_schedule(args.name)
    if ctx.json:
        ctx.print_message(schedule)
        return 0
    ctx.out.print(_details(schedule))
    return 0


def _details(schedule: schedule_service_pb2.Schedule, *, brief: bool = False) -> Table:
    """A schedule's fields, a line each (`brief`: those `list` shows)."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    version = schedule.workflow_version or "latest"
    rows = [
        ("schedule", schedule.name),
        ("workflow", f"{schedule.workflow} (version {version})"),
        ("timing", _timing(schedule)),
        ("overlap", overlap_name(schedule.overlap_policy)),
    ]
    if not brief:
        rows += [
            ("catch-up window", format_duration(_seconds(schedule.catch_up_window))),
            ("jitter", format_duration(_seconds(schedule.jitter))),
        ]
    rows += [
        ("state", _state(schedule)),
        ("next fire", format_time(schedule.next_fire_time)),
        ("missed fires", str(schedule.missed_fires)),
    ]
    if not brief:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(schedule.labels.items()))
        rows += [("labels", labels or "-"), ("created", format_time(schedule.create_time))]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _print_state(ctx: Context, schedule: schedule_service_pb2.Schedule) -> None:
    if ctx.json:
        ctx.print_message(schedule)
        return
    following = "" if schedule.paused else f", next fire {format_time(schedule.next_fire_time)}"
    ctx.out.print(f"{schedule.name}: {_state(schedule)}{following}", highlight=False)


def pause_schedule(args: argparse.Namespace, ctx: Context) -> int:
    _print_state(ctx, ctx.client().pause_schedule(args.name))
    return 0


def resume_schedule(args: argparse.Namespace, ctx: Context) -> int:
    _print_state(ctx, ctx.client().resume_schedule(args.name))
    return 0


def delete_schedule(args: argparse.Namespace, ctx: Context) -> int:
    ctx.client().delete_schedule(args.name)
    if ctx.json:
        ctx.print_message(schedule_service_pb2.DeleteScheduleResponse())
    else:
        ctx.out.print(f"deleted {schedule_name(args.name)}", highlight=False)
    return 0


def trigger_schedule(args: argparse.Namespace, ctx: Context) -> int:
    run = ctx.client().trigger_schedule(args.name)
    if ctx.json:
        ctx.print_message(schedule_service_pb2.TriggerScheduleResponse(run=run))
    else:
        ctx.out.print(f"started {run}", highlight=False)
    return 0
