"""`podium alerts`: where governance alerts go (budget thresholds, breakers, long
waits), read and changed at runtime."""

from __future__ import annotations

import argparse
from typing import Any

from podium.cli import inputs
from podium.cli.context import Context
from podium.cli.parser import ArgumentParser, InvalidValue, json_option, leaf_options
from podium.client.governance import alert_kind_label
from podium.v1 import control_service_pb2

__all__ = ["alerts_text", "register"]

_C = control_service_pb2
_KINDS = ("budget_threshold", "breaker_opened", "breaker_closed", "quota_wait", "budget_wait")


def register(commands: Any) -> None:
    read, common = [leaf_options(), json_option()], [leaf_options()]
    alerts: ArgumentParser = commands.add_parser(
        "alerts", parents=read, help="show where governance alerts go; set them or switch off"
    )
    alerts.set_defaults(handler=show_alerts)
    alert_commands = alerts.add_subparsers(dest="alerts_command", metavar="COMMAND")
    set_alerts = alert_commands.add_parser(
        "set", parents=read, help="replace the alerts settings (persisted)"
    )
    set_alerts.add_argument("--url", default="", help="POST alerts here (default: metrics only)")
    set_alerts.add_argument(
        "--secret", default="", help="the server secret (serve --secret NAME=...) that signs them"
    )
    set_alerts.add_argument(
        "--kind",
        dest="kinds",
        action="append",
        choices=_KINDS,
        default=[],
        help="raise only these kinds (repeat; default: all)",
    )
    set_alerts.add_argument(
        "--threshold",
        dest="thresholds",
        action="append",
        type=inputs.number,
        default=[],
        metavar="FRACTION",
        help="a budget's fraction whose crossing alerts (repeat; default: warn_fraction and 1)",
    )
    set_alerts.add_argument(
        "--wait-after",
        type=inputs.number,
        default=None,
        metavar="SECONDS",
        help="alert when a call waits this long for a quota or budget (default: 60)",
    )
    set_alerts.add_argument(
        "--min-interval",
        type=inputs.number,
        default=None,
        metavar="SECONDS",
        help="at most one alert of a kind and subject this often (default: 300)",
    )
    set_alerts.add_argument(
        "--queue-size",
        type=inputs.non_negative,
        default=0,
        metavar="N",
        help="alerts queued for delivery at most (default: 1000)",
    )
    set_alerts.set_defaults(handler=update_alerts)
    off = alert_commands.add_parser("off", parents=common, help="switch alerting off")
    off.set_defaults(handler=switch_off)


def show_alerts(args: argparse.Namespace, ctx: Context) -> int:
    alerts = ctx.client().get_alerts()
    if ctx.json:
        ctx.print_message(_C.GetAlertsResponse(alerts=alerts))
    elif alerts is None:
        ctx.out.print("alerts are off")
    else:
        ctx.out.print(alerts_text(alerts), highlight=False, soft_wrap=True)
    return 0


def update_alerts(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    try:
        alerts = client.update_alerts(
            args.url,
            args.secret,
            kinds=args.kinds,
            budget_thresholds=args.thresholds,
            wait_after=args.wait_after,
            min_interval=args.min_interval,
            queue_size=args.queue_size,
        )
    except ValueError as error:  # a value the client refused to send
        raise InvalidValue(str(error)) from None
    if ctx.json:
        ctx.print_message(alerts)
    else:
        ctx.out.print(alerts_text(alerts), highlight=False, soft_wrap=True)
    return 0


def switch_off(args: argparse.Namespace, ctx: Context) -> int:
    ctx.client().disable_alerts()
    ctx.out.print("alerts are off")
    return 0


def alerts_text(alerts: control_service_pb2.Alerts) -> str:
    """One line per setting, as `podium alerts` shows them."""
    where = f"{alerts.url} (signed with secret {alerts.secret})" if alerts.url else "metrics only"
    thresholds = (
        ", ".join(f"{fraction:g}" for fraction in alerts.budget_thresholds)
        or "each budget's warn_fraction and 1"
    )
    return "\n".join(
        [
            f"url: {where}",
            f"kinds: {', '.join(alert_kind_label(kind) for kind in alerts.kinds)}",
            f"budget thresholds: {thresholds}",
            f"wait after: {alerts.wait_after.ToNanoseconds() / 1e9:g}s",
            f"min interval: {alerts.min_interval.ToNanoseconds() / 1e9:g}s",
            f"queue size: {alerts.queue_size}",
        ]
    )
