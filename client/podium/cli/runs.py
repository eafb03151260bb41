"""`podium runs start|get|list|cancel|pause|resume|rerun|watch|delete|approve|reject|signal|
complete-callback`."""

from __future__ import annotations

import argparse
import itertools
from typing import Any

from podium.cli import inputs
from podium.cli.context import Context
from podium.cli.parser import ArgumentParser, UsageError, json_option, leaf_options
from podium.cli.render import run_details, runs_table
from podium.cli.watch import follow_run
from podium.client.enums import run_state_label
from podium.client.names import run_name
from podium.v1 import execution_service_pb2, run_pb2

__all__ = ["register"]

_DEFAULT_LIST_LIMIT = 50
# The server caps a page at this many runs (ListRunsRequest.page_size).
_MAX_PAGE = 1000


def register(commands: Any) -> None:
    group: ArgumentParser = commands.add_parser("runs", help="start, inspect and follow runs")
    sub = group.add_subparsers(dest="runs_command", metavar="COMMAND", required=True)
    common, read = [leaf_options()], [leaf_options(), json_option()]

    start = sub.add_parser("start", parents=read, help="start a run of a workflow")
    start.add_argument("workflow", metavar="WORKFLOW", help="workflow id or workflows/ID")
    start.add_argument(
        "--input", type=inputs.run_input, default=None, help="run input: a JSON object or @FILE"
    )
    start.add_argument(
        "--label",
        type=inputs.label,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="label the run (repeatable)",
    )
    start.add_argument("--request-id", default=None, help="idempotency key (default: random)")
    start.add_argument("--max-concurrency", type=int, default=0, help="most steps at once")
    start.add_argument("--workflow-version", type=int, default=0, help="default: latest")
    start.add_argument(
        "--max-cost",
        type=inputs.amount,
        default=None,
        metavar="USD",
        help="hard ceiling of the run's LLM spend, e.g. 0.50 (lowers the workflow's)",
    )
    start.add_argument(
        "--priority",
        type=int,
        default=0,
        help="higher runs' ready steps go first when concurrency limits are reached (default 0)",
    )
    start.add_argument(
        "--notify-url",
        default="",
        metavar="URL",
        help="POST the run's summary there when it ends (overrides the workflow's)",
    )
    start.add_argument(
        "--notify-secret",
        default="",
        metavar="NAME",
        help="the server secret that signs the notification (podium serve --secret)",
    )
    start.add_argument(
        "--watch",
        action="store_true",
        help="follow the run until it ends (with --json: one event a line, proto JSON)",
    )
    start.set_defaults(handler=start_run)

    get = sub.add_parser("get", parents=read, help="show a run and its steps")
    get.add_argument("run", metavar="RUN", help="run id or runs/ID")
    get.set_defaults(handler=get_run)

    listing = sub.add_parser("list", parents=read, help="list runs, newest first")
    listing.add_argument("--workflow", default=None, help="only runs of this workflow")
    listing.add_argument(
        "--state",
        type=inputs.state,
        action="append",
        default=[],
        metavar="STATE",
        help="only runs in this state (repeatable): pending, running, succeeded, ...",
    )
    listing.add_argument(
        "--label", type=inputs.label, action="append", default=[], metavar="KEY=VALUE"
    )
    listing.add_argument(
        "--parent", default=None, metavar="RUN", help="only the child runs this run started"
    )
    listing.add_argument(
        "--schedule", default=None, metavar="SCHEDULE", help="only the runs this schedule started"
    )
    listing.add_argument(
        "--limit",
        type=inputs.non_negative,
        default=_DEFAULT_LIST_LIMIT,
        metavar="N",
        help=f"show the newest N runs (default {_DEFAULT_LIST_LIMIT}; 0: every run)",
    )
    listing.add_argument(
        "--page-size",
        type=inputs.non_negative,
        default=0,
        metavar="N",
        help="runs fetched per request (default: the server's)",
    )
    listing.set_defaults(handler=list_runs)

    cancel = sub.add_parser("cancel", parents=read, help="cancel a run")
    cancel.add_argument("run", metavar="RUN", help="run id or runs/ID")
    cancel.add_argument("--reason", default="", help="recorded on the run")
    cancel.set_defaults(handler=cancel_run)

    pause = sub.add_parser(
        "pause", parents=read, help="pause a run: nothing new starts, running steps finish"
    )
    pause.add_argument("run", metavar="RUN", help="run id or runs/ID")
    pause.add_argument("--reason", default="", help="recorded in the RUN_PAUSED event")
    pause.set_defaults(handler=pause_run)

    resume = sub.add_parser("resume", parents=read, help="resume a paused run")
    resume.add_argument("run", metavar="RUN", help="run id or runs/ID")
    resume.set_defaults(handler=resume_run)

    again = sub.add_parser(
        "rerun",
        parents=read,
        help="re-run finished runs, reusing the outputs of their succeeded steps",
    )
    again.add_argument(
        "run", metavar="RUN", nargs="?", default=None, help="run id or runs/ID (or a filter)"
    )
    again.add_argument(
        "--from-step",
        action="append",
        default=[],
        metavar="STEP",
        dest="from_steps",
        help="run again from this step and downstream (repeatable; default: the failed ones)",
    )
    again.add_argument("--workflow", default=None, help="every finished run of this workflow")
    again.add_argument(
        "--state",
        type=inputs.state,
        action="append",
        default=[],
        metavar="STATE",
        help="with the filter: only runs that ended in this state (repeatable)",
    )
    again.add_argument(
        "--label", type=inputs.label, action="append", default=[], metavar="KEY=VALUE"
    )
    again.add_argument(
        "--max-runs",
        type=inputs.non_negative,
        default=0,
        metavar="N",
        help="with the filter: at most N runs (default 100)",
    )
    again.add_argument(
        "--request-id",
        default="",
        metavar="ID",
        help="idempotency key: a retry with the same ID returns the runs the first call started",
    )
    again.set_defaults(handler=rerun_runs)

    watch = sub.add_parser(
        "watch",
        parents=read,
        help="follow a run until it ends (with --json: one event a line, proto JSON)",
    )
    watch.add_argument("run", metavar="RUN", help="run id or runs/ID")
    watch.add_argument(
        "--after", type=int, default=0, metavar="N", help="print only events after sequence N"
    )
    watch.set_defaults(handler=watch_run)

    delete = sub.add_parser("delete", parents=common, help="delete a finished run and its events")
    delete.add_argument("run", metavar="RUN", help="run id or runs/ID")
    delete.set_defaults(handler=delete_run)

    for verb, approve in (("approve", True), ("reject", False)):
        decide = sub.add_parser(
            verb, parents=read, help=f"{verb} an approval step that waits for a decision"
        )
        decide.add_argument("run", metavar="RUN", help="run id or runs/ID")
        decide.add_argument("step", metavar="STEP", help="the approval step's id")
        decide.add_argument(
            "--comment",
            default="",
            help="recorded with the decision"
            + ("" if approve else " (recommended: say why, for whoever reads the run)"),
        )
        decide.set_defaults(handler=resolve_approval, approve=approve)

    send = sub.add_parser("signal", parents=read, help="send a signal to a run")
    send.add_argument("run", metavar="RUN", help="run id or runs/ID")
    send.add_argument("name", metavar="NAME", help="the signal's name")
    send.add_argument(
        "--payload",
        type=inputs.json_payload,
        default=None,
        metavar="JSON",
        help="the signal's payload: any JSON value or @FILE (default: null)",
    )
    send.add_argument(
        "--request-id", default=None, help="idempotency key within the run (default: random)"
    )
    send.set_defaults(handler=signal_run)

    callback = sub.add_parser(
        "complete-callback", parents=read, help="complete a callback step with its token"
    )
    callback.add_argument(
        "token", metavar="TOKEN", help="the token of a CALLBACK_ISSUED event (cb_...)"
    )
    callback.add_argument(
        "--payload",
        type=inputs.json_payload,
        default=None,
        metavar="JSON",
        help="the step's output: any JSON value or @FILE (default: null)",
    )
    callback.set_defaults(handler=complete_callback)


def start_run(args: argparse.Namespace, ctx: Context) -> int:
    run = ctx.client().start_run(
        args.workflow,
        args.input,
        request_id=args.request_id,
        labels=dict(args.label),
        max_concurrency=args.max_concurrency,
        workflow_version=args.workflow_version,
        max_cost=args.max_cost,
        priority=args.priority,
        notify_url=args.notify_url,
        notify_secret=args.notify_secret,
    )
    if args.watch:
        if not ctx.json:
            ctx.out.print(f"started {run.name} of {run.workflow}", highlight=False, soft_wrap=True)
        return follow_run(ctx, run.name)
    if ctx.json:
        ctx.print_message(run)
    else:
        ctx.out.print(
            f"started {run.name} of {run.workflow} version {run.workflow_version}"
            f" ({run_state_label(run.state)})",
            highlight=False,
            soft_wrap=True,
        )
    return 0


def get_run(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    run = client.get_run(args.run)
    if ctx.json:
        ctx.print_message(run)
    else:
        # The child runs its `workflow` steps started (GetRun does not list them).
        children = list(client.list_runs(parent=run.name))
        ctx.out.print(run_details(run, children))
    return 0


def list_runs(args: argparse.Namespace, ctx: Context) -> int:
    limit: int = args.limit
    page_size: int = args.page_size or (min(limit + 1, _MAX_PAGE) if limit else 0)
    listed = ctx.client().list_runs(
        args.workflow,
        args.state,
        dict(args.label),
        page_size=page_size,
        parent=args.parent,
        schedule=args.schedule,
    )
    # One run past the limit tells whether there are more, without reading every page.
    runs = list(itertools.islice(listed, limit + 1)) if limit else list(listed)
    more = bool(limit) and len(runs) > limit
    runs = runs[:limit] if limit else runs
    if ctx.json:
        ctx.print_message(execution_service_pb2.ListRunsResponse(runs=runs))
    elif not runs:
        ctx.out.print("no runs")
    else:
        ctx.out.print(runs_table(runs))
        if more:
            ctx.out.print(
                f"(the newest {limit}; --limit N shows more, --limit 0 every run)",
                style="dim",
                highlight=False,
            )
    return 0


def cancel_run(args: argparse.Namespace, ctx: Context) -> int:
    run = ctx.client().cancel_run(args.run, reason=args.reason)
    if ctx.json:
        ctx.print_message(run)
    else:
        ctx.out.print(f"{run.name}: {run_state_label(run.state)}", highlight=False)
    return 0


def pause_run(args: argparse.Namespace, ctx: Context) -> int:
    run = ctx.client().pause_run(args.run, reason=args.reason)
    return _print_run_state(run, ctx)


def resume_run(args: argparse.Namespace, ctx: Context) -> int:
    return _print_run_state(ctx.client().resume_run(args.run), ctx)


def rerun_runs(args: argparse.Namespace, ctx: Context) -> int:
    filtered = args.workflow or args.state or args.label
    if (args.run is None) == (not filtered):
        raise UsageError("give either RUN or a filter (--workflow, --state, --label), not both")
    if args.run is not None:
        run = ctx.client().rerun_run(args.run, args.from_steps, request_id=args.request_id)
        if ctx.json:
            ctx.print_message(run)
        else:
            ctx.out.print(
                f"started {run.name} (re-run of {run.rerun_of})", highlight=False, soft_wrap=True
            )
        return 0
    response = ctx.client().rerun_runs(
        args.workflow,
        args.state,
        dict(args.label),
        from_steps=args.from_steps,
        max_runs=args.max_runs,
        request_id=args.request_id,
    )
    if ctx.json:
        ctx.print_message(response)
    else:
        for new, original in zip(response.runs, response.originals, strict=True):
            ctx.out.print(f"started {new} (re-run of {original})", highlight=False, soft_wrap=True)
        if not response.runs:
            ctx.out.print("no finished run matches", highlight=False)
    return 0


def _print_run_state(run: run_pb2.Run, ctx: Context) -> int:
    if ctx.json:
        ctx.print_message(run)
    else:
        ctx.out.print(f"{run.name}: {run_state_label(run.state)}", highlight=False)
    return 0


def watch_run(args: argparse.Namespace, ctx: Context) -> int:
    return follow_run(ctx, args.run, after_sequence=args.after)


def delete_run(args: argparse.Namespace, ctx: Context) -> int:
    ctx.client().delete_run(args.run)
    ctx.out.print(f"deleted {run_name(args.run)}", highlight=False, soft_wrap=True)
    return 0


def resolve_approval(args: argparse.Namespace, ctx: Context) -> int:
    run = ctx.client().resolve_approval(
        args.run, args.step, approve=args.approve, comment=args.comment
    )
    if ctx.json:
        ctx.print_message(run)
    else:
        verb = "approved" if args.approve else "rejected"
        ctx.out.print(
            f"{verb} {args.step} of {run.name}: run {run_state_label(run.state)}",
            highlight=False,
            soft_wrap=True,
        )
    return 0


def signal_run(args: argparse.Namespace, ctx: Context) -> int:
    sent = ctx.client().signal_run(args.run, args.name, args.payload, request_id=args.request_id)
    if ctx.json:
        ctx.print_message(sent)
    else:
        where = f"consumed by {sent.consumed_by}" if sent.consumed_by else "kept by the run"
        ctx.out.print(
            f"signal {args.name} #{sent.position} to {run_name(args.run)}: {where}",
            highlight=False,
            soft_wrap=True,
        )
    return 0


def complete_callback(args: argparse.Namespace, ctx: Context) -> int:
    done = ctx.client().complete_callback(args.token, args.payload)
    if ctx.json:
        ctx.print_message(done)
    else:
        ctx.out.print(f"completed {done.step_id} of {done.run}", highlight=False, soft_wrap=True)
    return 0
