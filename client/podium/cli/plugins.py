"""`podium plugins`: what is installed locally, loaded or not; no server needed."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from podium.cli.context import Context
from podium.cli.parser import ArgumentParser

__all__ = ["register"]

_STATUS_STYLES = {"loaded": "green", "failed": "bold red", "disabled": "dim"}
_PLUGIN_MODULES = frozenset({"podium", "podium.plugins", "podium.plugins.manager"})


def register(commands: Any) -> None:
    plugins: ArgumentParser = commands.add_parser(
        "plugins", help="list installed plugins and whether they load"
    )
    plugins.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON"
    )
    plugins.set_defaults(handler=plugins_command)


def plugins_command(args: argparse.Namespace, ctx: Context) -> int:
    try:
        manager = importlib.import_module("podium.plugins.manager")
    except ModuleNotFoundError as error:
        if error.name not in _PLUGIN_MODULES:
            raise
        print("error: podium plugins needs the 'podium' distribution installed", file=sys.stderr)
        return 2
    described: Sequence[Mapping[str, Any]] = manager.describe_installed_plugins()
    if ctx.json:
        ctx.print_plain(json.dumps([dict(p) for p in described], indent=2, default=str))
        return 0
    if not described:
        ctx.out.print("no plugins installed")
        return 0
    ctx.out.print(_table(described))
    # Errors below the table, one line each: in a column they would be folded to shreds.
    for plugin in described:
        if plugin.get("error"):
            ctx.out.print(
                Text.assemble((f"{plugin.get('name', '?')}: ", "bold red"), str(plugin["error"])),
                soft_wrap=True,
            )
    return 0


def _table(plugins: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("PLUGIN", "DISTRIBUTION", "VERSION", "STATUS", "AGENTS", "PROVIDERS", "TOOLS"):
        table.add_column(column)
    for plugin in plugins:
        status = str(plugin.get("status", ""))
        table.add_row(
            str(plugin.get("name", "")),
            str(plugin.get("distribution", "")),
            str(plugin.get("version", "")),
            Text(status, style=_STATUS_STYLES.get(status, "")),
            _names(plugin.get("agents")),
            _names(plugin.get("providers")),
            _names(plugin.get("tools")),
        )
    return table


def _names(values: Any) -> str:
    return ", ".join(str(v) for v in values or ()) or "-"
