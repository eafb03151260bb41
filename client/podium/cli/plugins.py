"""`podium plugins`: the plugins the server found, loaded or not, and what each registered;
`--local` shows what is installed where the CLI runs instead (no server needed)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import json_format
from rich.table import Table
from rich.text import Text

from podium.cli.context import Context
from podium.cli.parser import ArgumentParser, leaf_options
from podium.v1 import control_service_pb2

__all__ = ["register"]

_STATUS_STYLES = {"loaded": "green", "failed": "bold red", "disabled": "dim"}
_PLUGIN_MODULES = frozenset({"podium", "podium.plugins", "podium.plugins.manager"})


def register(commands: Any) -> None:
    plugins: ArgumentParser = commands.add_parser(
        "plugins",
        parents=[leaf_options()],
        help="list the server's plugins, whether they loaded and what they register",
    )
    plugins.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON"
    )
    plugins.add_argument(
        "--local",
        action="store_true",
        help="list what is installed where this command runs instead (no server needed)",
    )
    plugins.set_defaults(handler=plugins_command)


def plugins_command(args: argparse.Namespace, ctx: Context) -> int:
    described = _installed_here() if args.local else _loaded_by_server(ctx)
    if described is None:
        print(
            "error: podium plugins --local needs the 'podium' distribution installed",
            file=sys.stderr,
        )
        return 2
    if ctx.json:
        ctx.print_plain(json.dumps([dict(p) for p in described], indent=2, default=str))
        return 0
    if not described:
        ctx.out.print("no plugins installed" if args.local else "the server found no plugins")
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


def _loaded_by_server(ctx: Context) -> list[dict[str, Any]]:
    """The server's view, in the same shape as the local one (status as a lower-case word)."""
    described = []
    for plugin in ctx.client().list_plugins():
        entry = json_format.MessageToDict(plugin, preserving_proto_field_name=True)
        entry["status"] = (
            control_service_pb2.PluginStatus.Name(plugin.status)
            .removeprefix("PLUGIN_STATUS_")
            .lower()
        )
        described.append(entry)
    return described


def _installed_here() -> Sequence[Mapping[str, Any]] | None:
    try:
        manager = importlib.import_module("podium.plugins.manager")
    except ModuleNotFoundError as error:
        if error.name not in _PLUGIN_MODULES:
            raise
        return None
    described: Sequence[Mapping[str, Any]] = manager.describe_installed_plugins()
    return described


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
