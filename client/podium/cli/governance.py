"""`podium quotas|budgets|spend|breakers`: the server's governance, read and changed."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, TypeVar

from rich.table import Table
from rich.text import Text

from podium.cli import inputs
from podium.cli.context import Context
from podium.cli.formatting import format_time
from podium.cli.parser import ArgumentParser, InvalidValue, json_option, leaf_options
from podium.client.governance import (
    breaker_state_label,
    budget_period_label,
    quota_dimension_label,
    scope_text,
)
from podium.client.money import format_usd, to_decimal
from podium.v1 import control_service_pb2

__all__ = [
    "breakers_table",
    "budgets_table",
    "quotas_table",
    "register",
    "spend_table",
]

_C = control_service_pb2
_DIMENSIONS = ("requests", "input_tokens", "output_tokens", "tokens", "concurrency")
_PERIODS = ("none", "day", "month")
_BREAKER_STYLES = {"CLOSED": "bold green", "OPEN": "bold red", "HALF_OPEN": "bold yellow"}
T = TypeVar("T")


def register(commands: Any) -> None:
    read, common = [leaf_options(), json_option()], [leaf_options()]

    quotas: ArgumentParser = commands.add_parser(
        "quotas", parents=read, help="list rate and concurrency limits; set or delete one"
    )
    quotas.set_defaults(handler=list_quotas)
    quota_commands = quotas.add_subparsers(dest="quotas_command", metavar="COMMAND")
    set_quota = quota_commands.add_parser(
        "set", parents=read, help="create or replace a quota (persisted)"
    )
    set_quota.add_argument("name", metavar="NAME", help="shown in waits as quota:NAME")
    set_quota.add_argument(
        "--scope",
        required=True,
        help="provider:NAME, model:PROVIDER/MODEL, agent:NAME, workflow:ID or tenant:NAME",
    )
    set_quota.add_argument(
        "--dimension",
        required=True,
        choices=_DIMENSIONS,
        help="what it counts: per window, or calls (runs for a workflow) at once",
    )
    set_quota.add_argument(
        "--limit", required=True, type=inputs.number, help="per window, or at once"
    )
    set_quota.add_argument(
        "--burst", type=inputs.number, default=0.0, help="bucket size (default: the limit)"
    )
    set_quota.add_argument(
        "--window",
        type=inputs.window,
        default=None,
        metavar="WINDOW",
        help="second, minute (default), hour, day, or seconds: the rate is LIMIT per WINDOW",
    )
    set_quota.set_defaults(handler=update_quota)
    delete_quota = quota_commands.add_parser("delete", parents=common, help="delete a quota")
    delete_quota.add_argument("name", metavar="NAME")
    delete_quota.set_defaults(handler=delete_quota_command)

    budgets: ArgumentParser = commands.add_parser(
        "budgets", parents=read, help="list spend ceilings and their use; set or delete one"
    )
    budgets.set_defaults(handler=list_budgets)
    budget_commands = budgets.add_subparsers(dest="budgets_command", metavar="COMMAND")
    set_budget = budget_commands.add_parser(
        "set", parents=read, help="create or replace a budget (persisted)"
    )
    set_budget.add_argument("name", metavar="NAME")
    set_budget.add_argument(
        "--scope", required=True, help="server, provider:NAME, agent:NAME or workflow:ID"
    )
    set_budget.add_argument("--limit", required=True, type=inputs.amount, help="USD, e.g. 5.00")
    set_budget.add_argument(
        "--period", choices=_PERIODS, default="none", help="when spend resets (default: none)"
    )
    set_budget.add_argument(
        "--time-zone", default="UTC", help="IANA zone of the period's calendar (default: UTC)"
    )
    set_budget.add_argument(
        "--warn",
        type=inputs.number,
        default=0.8,
        metavar="FRACTION",
        help="emit BUDGET_WARNING past this fraction of the limit (default: 0.8)",
    )
    set_budget.set_defaults(handler=update_budget)
    delete_budget = budget_commands.add_parser("delete", parents=common, help="delete a budget")
    delete_budget.add_argument("name", metavar="NAME")
    delete_budget.set_defaults(handler=delete_budget_command)

    spend: ArgumentParser = commands.add_parser(
        "spend", parents=read, help="settled LLM spend by scope and day or month"
    )
    spend.add_argument(
        "--scope",
        default=None,
        help="only this scope (provider:openai) or kind of scope (provider); default: all",
    )
    spend.add_argument("--period", choices=("day", "month"), default="day", help="UTC periods")
    spend.add_argument(
        "--since", default="", metavar="PERIOD", help="from this day (2026-11-01) or month on"
    )
    spend.set_defaults(handler=get_spend)

    breakers: ArgumentParser = commands.add_parser(
        "breakers", parents=read, help="list circuit breakers; reset one"
    )
    breakers.set_defaults(handler=list_breakers)
    breaker_commands = breakers.add_subparsers(dest="breakers_command", metavar="COMMAND")
    reset = breaker_commands.add_parser("reset", parents=read, help="close a breaker")
    reset.add_argument("name", metavar="NAME", help="provider:P, model:P/M or agent:A")
    reset.set_defaults(handler=reset_breaker)


# -- handlers -------------------------------------------------------------------------------


def list_quotas(args: argparse.Namespace, ctx: Context) -> int:
    quotas = ctx.client().list_quotas()
    if ctx.json:
        ctx.print_message(_C.ListQuotasResponse(quotas=quotas))
    elif not quotas:
        ctx.out.print("no quotas")
    else:
        ctx.out.print(quotas_table(quotas))
    return 0


def update_quota(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    quota = _checked(
        lambda: client.update_quota(
            args.name, args.scope, args.dimension, args.limit, burst=args.burst, window=args.window
        )
    )
    if ctx.json:
        ctx.print_message(quota)
    else:
        ctx.out.print(
            f"quota {quota.name}: {scope_text(quota.scope)}"
            f" {quota_dimension_label(quota.dimension)} {_limit(quota)}",
            highlight=False,
            soft_wrap=True,
        )
    return 0


def delete_quota_command(args: argparse.Namespace, ctx: Context) -> int:
    ctx.client().delete_quota(args.name)
    ctx.out.print(f"deleted quota {args.name}", highlight=False, soft_wrap=True)
    return 0


def list_budgets(args: argparse.Namespace, ctx: Context) -> int:
    budgets = ctx.client().list_budgets()
    if ctx.json:
        ctx.print_message(_C.ListBudgetsResponse(budgets=budgets))
    elif not budgets:
        ctx.out.print("no budgets")
    else:
        ctx.out.print(budgets_table(budgets))
    return 0


def update_budget(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    budget = _checked(
        lambda: client.update_budget(
            args.name,
            args.scope,
            args.limit,
            period=args.period,
            time_zone=args.time_zone,
            warn_fraction=args.warn,
        )
    )
    if ctx.json:
        ctx.print_message(budget)
    else:
        ctx.out.print(
            f"budget {budget.name}: {scope_text(budget.scope)} {format_usd(budget.limit)}"
            f" {_period(budget)}, spent {format_usd(budget.spent)},"
            f" warn at {budget.warn_fraction:.0%}",
            highlight=False,
            soft_wrap=True,
        )
    return 0


def delete_budget_command(args: argparse.Namespace, ctx: Context) -> int:
    ctx.client().delete_budget(args.name)
    ctx.out.print(f"deleted budget {args.name}", highlight=False, soft_wrap=True)
    return 0


def get_spend(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    spend = _checked(lambda: client.get_spend(args.scope, period=args.period, since=args.since))
    if ctx.json:
        ctx.print_message(spend)
        return 0
    if spend.entries:
        ctx.out.print(spend_table(spend.entries))
    else:
        ctx.out.print("no spend recorded")
    ctx.out.print(f"total: {format_usd(spend.total)}", highlight=False)
    return 0


def list_breakers(args: argparse.Namespace, ctx: Context) -> int:
    breakers = ctx.client().list_breakers()
    if ctx.json:
        ctx.print_message(_C.ListBreakersResponse(breakers=breakers))
    elif not breakers:
        ctx.out.print("no breakers")
    else:
        ctx.out.print(breakers_table(breakers))
    return 0


def reset_breaker(args: argparse.Namespace, ctx: Context) -> int:
    breaker = ctx.client().reset_breaker(args.name)
    if ctx.json:
        ctx.print_message(breaker)
    else:
        label = breaker_state_label(breaker.state)
        ctx.out.print(
            Text.assemble(f"reset {breaker.name}: ", (label, _BREAKER_STYLES.get(label, ""))),
            highlight=False,
            soft_wrap=True,
        )
    return 0


def _checked(call: Callable[[], T]) -> T:
    """The call's result; a value the client refused to send becomes a one-line field error."""
    try:
        return call()
    except ValueError as error:
        raise InvalidValue(str(error)) from None


# -- tables ---------------------------------------------------------------------------------


def quotas_table(quotas: Iterable[control_service_pb2.Quota]) -> Table:
    table = _table("NAME", "SCOPE", "DIMENSION", "LIMIT", "BURST", "AVAILABLE", "PAUSED UNTIL")
    for quota in quotas:
        concurrency = quota.dimension == _C.QUOTA_DIMENSION_CONCURRENCY
        paused = quota.HasField("paused_until")
        table.add_row(
            quota.name,
            scope_text(quota.scope),
            quota_dimension_label(quota.dimension),
            _limit(quota),
            "-" if concurrency else _number(quota.burst or quota.limit),
            _number(quota.available),
            Text(format_time(quota.paused_until), style="bold yellow") if paused else Text("-"),
        )
    return table


def budgets_table(budgets: Iterable[control_service_pb2.Budget]) -> Table:
    table = _table("NAME", "SCOPE", "LIMIT", "PERIOD", "SPENT", "RESERVED", "USED", "WARN AT")
    for budget in budgets:
        table.add_row(
            budget.name,
            scope_text(budget.scope),
            format_usd(budget.limit),
            _period(budget),
            format_usd(budget.spent),
            format_usd(budget.reserved),
            _used(budget),
            f"{budget.warn_fraction:.0%}",
        )
    return table


def spend_table(entries: Iterable[control_service_pb2.SpendEntry]) -> Table:
    table = _table("SCOPE", "PERIOD", "SPENT", "CALLS")
    rows = sorted(entries, key=lambda e: (e.scope.kind, e.scope.value, e.period_key))
    for entry in rows:
        table.add_row(
            scope_text(entry.scope), entry.period_key, format_usd(entry.spent), f"{entry.calls:,}"
        )
    return table


def breakers_table(breakers: Iterable[control_service_pb2.Breaker]) -> Table:
    table = _table("TENANT", "NAME", "STATE", "CAUSE", "FAILURES/CALLS", "HALF-OPEN AT")
    for breaker in breakers:
        label = breaker_state_label(breaker.state)
        table.add_row(
            breaker.tenant,
            breaker.name,
            Text(label, style=_BREAKER_STYLES.get(label, "")),
            " ".join(breaker.cause.split()) or "-",
            f"{breaker.failures}/{breaker.calls}",
            format_time(breaker.half_open_time),
        )
    return table


def _table(*columns: str) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    numeric = {"LIMIT", "BURST", "AVAILABLE", "SPENT", "RESERVED", "USED", "WARN AT", "CALLS"}
    for column in columns:
        table.add_column(column, justify="right" if column in numeric else "left")
    return table


def _number(value: float) -> str:
    """ "60", "1,000", "12.5": whole numbers without a fraction, others to one decimal."""
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.1f}"


def _limit(quota: control_service_pb2.Quota) -> str:
    if quota.dimension == _C.QUOTA_DIMENSION_CONCURRENCY:
        return f"{_number(quota.limit)} concurrent"
    window = quota.window
    seconds = window.seconds + window.nanos / 1e9 if quota.HasField("window") else 60.0
    return f"{_number(quota.limit)}/{_WINDOW_NAMES.get(seconds, f'{seconds:g}s')}"


_WINDOW_NAMES = {1.0: "s", 60.0: "min", 3600.0: "h", 86400.0: "day"}


def _period(budget: control_service_pb2.Budget) -> str:
    label = budget_period_label(budget.period)
    if budget.time_zone and budget.time_zone != "UTC" and label in ("day", "month"):
        label = f"{label} {budget.time_zone}"
    if budget.period_key and budget.period_key != "all":
        label = f"{label} ({budget.period_key})"
    return label


def _used(budget: control_service_pb2.Budget) -> Text:
    limit = to_decimal(budget.limit)
    spent = to_decimal(budget.spent)
    if limit <= 0:
        return Text("-" if not spent else "over", style="bold red" if spent else "")
    fraction = spent / limit
    style = ""
    if fraction >= 1:
        style = "bold red"
    elif fraction >= Decimal(str(budget.warn_fraction or 0.8)):
        style = "bold yellow"
    return Text(f"{fraction:.0%}", style=style)
