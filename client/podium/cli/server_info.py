"""`podium status` and `podium agents`: what the server says about itself, not what is installed
where the CLI runs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from google.protobuf import json_format
from rich.table import Table

from podium.cli.context import Context
from podium.cli.formatting import format_duration, format_time
from podium.cli.parser import ArgumentParser, CommandFailed, json_option, leaf_options
from podium.v1 import control_service_pb2

__all__ = ["register"]


def register(commands: Any) -> None:
    read = [leaf_options(), json_option()]
    status: ArgumentParser = commands.add_parser(
        "status", parents=read, help="the server's version, uptime, active runs and plugins"
    )
    status.set_defaults(handler=status_command)

    agents: ArgumentParser = commands.add_parser(
        "agents", parents=read, help="the agents the server can run, in-process or on workers"
    )
    agents.add_argument(
        "--schema",
        metavar="AGENT",
        default=None,
        help="print the JSON Schemas (config, input, output) one agent declares",
    )
    agents.set_defaults(handler=agents_command)


def status_command(args: argparse.Namespace, ctx: Context) -> int:
    status = ctx.client().system_status()
    if ctx.json:
        ctx.print_message(status)
        return 0
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("address", ctx.address)
    table.add_row("version", status.version or "-")
    table.add_row("started", format_time(status.start_time))
    table.add_row("uptime", format_duration(status.uptime.ToTimedelta().total_seconds()))
    table.add_row("active runs", str(status.active_runs))
    table.add_row("running steps", str(status.running_steps))
    table.add_row("failed plugins", str(status.failed_plugins))
    healthy_database = True
    if status.HasField("database"):
        table.add_row("database", _database(status.database))
        healthy_database = status.database.reachable and status.database.writable
    ctx.out.print(table)
    return 1 if status.failed_plugins or not healthy_database else 0


def _database(database: control_service_pb2.DatabaseStatus) -> str:
    latency = database.ping_latency.ToNanoseconds() / 1e6
    state = "reachable" if database.reachable else "unreachable"
    text = f"{database.backend}, {state} (ping {latency:.1f} ms)"
    if not database.writable:
        text += ", refuses writes"
    if database.error:
        text += f": {database.error}"
    return text


def agents_command(args: argparse.Namespace, ctx: Context) -> int:
    agents = ctx.client().list_agents()
    if args.schema is not None:
        return _print_schema(ctx, agents, args.schema)
    if ctx.json:
        ctx.print_message(control_service_pb2.ListAgentsResponse(agents=agents))
        return 0
    if not agents:
        ctx.out.print("the server has no agents")
        return 0
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("AGENT", "VERSION", "WHERE", "PLUGIN", "DESCRIPTION"):
        table.add_column(column)
    for agent in agents:
        table.add_row(
            agent.name,
            agent.version or "-",
            _where(agent),
            agent.plugin or "-",
            agent.description.split("\n", 1)[0] or "-",
        )
    ctx.out.print(table)
    return 0


def _where(agent: control_service_pb2.AgentInfo) -> str:
    places = ["in-process"] if agent.in_process else []
    for workers in agent.workers:
        if workers.sessions:
            places.append(f"{workers.sessions} worker(s) on {workers.queue}")
        if workers.other_servers:
            # Cluster mode: served by workers connected to other servers (relayed).
            servers = ", ".join(workers.other_servers)
            places.append(f"workers of server(s) {servers} on {workers.queue}")
    return ", ".join(places) or "nowhere (no worker connected)"


def _print_schema(ctx: Context, agents: list[control_service_pb2.AgentInfo], name: str) -> int:
    agent = next((a for a in agents if a.name == name), None)
    if agent is None:
        known = ", ".join(a.name for a in agents) or "none"
        raise CommandFailed(f"NOT_FOUND: the server has no agent {name!r} (it has: {known})")
    schemas = {
        part: json_format.MessageToDict(getattr(agent, f"{part}_schema"))
        for part in ("config", "input", "output")
        if agent.HasField(f"{part}_schema")  # type: ignore[arg-type]
    }
    ctx.print_plain(json.dumps({"agent": agent.name, **schemas}, indent=2, sort_keys=True))
    return 0
