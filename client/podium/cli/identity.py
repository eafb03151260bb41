"""`podium tokens|whoami|audit`: API tokens, the caller, the audit trail."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from typing import Any

from rich.table import Table

from podium.cli import inputs
from podium.cli.context import Context
from podium.cli.formatting import format_time
from podium.cli.parser import ArgumentParser, UsageError, json_option, leaf_options
from podium.client.identity import ROLE_NAMES, role_name, role_value
from podium.v1 import identity_service_pb2

__all__ = ["register"]

_SERVER_MODULES = frozenset({"podium", "podium.server", "podium.server.bootstrap"})


def register(commands: Any) -> None:
    read = [leaf_options(), json_option()]
    tokens: ArgumentParser = commands.add_parser(
        "tokens", parents=read, help="list API tokens; create or revoke one (admin)"
    )
    tokens.add_argument("--all", action="store_true", default=False, help="include revoked tokens")
    tokens.set_defaults(handler=list_tokens)
    token_commands = tokens.add_subparsers(dest="tokens_command", metavar="COMMAND")
    create = token_commands.add_parser(
        "create", parents=read, help="create a token; its secret is printed once"
    )
    create.add_argument("--name", default="", help="what the token is for")
    create.add_argument(
        "--role",
        action="append",
        required=True,
        choices=ROLE_NAMES,
        help="a role of the token (repeat for several)",
    )
    create.add_argument("--tenant", default="", help="default: the caller's (--db: default)")
    create.add_argument(
        "--ttl", type=inputs.age, default=None, metavar="AGE", help="expire after 30d, 12h, ..."
    )
    create.add_argument(
        "--db",
        default=None,
        metavar="DB",
        help="create it in this database (a SQLite file or a postgresql:// URL), with no server"
        " running (the first admin token)",
    )
    create.set_defaults(handler=create_token)
    revoke = token_commands.add_parser("revoke", parents=read, help="revoke a token at once")
    revoke.add_argument("token_name", metavar="TOKEN", help="tokens/ID or ID")
    revoke.set_defaults(handler=revoke_token)

    whoami: ArgumentParser = commands.add_parser(
        "whoami", parents=read, help="the caller as the server sees it"
    )
    whoami.set_defaults(handler=show_caller)

    audit: ArgumentParser = commands.add_parser(
        "audit", parents=read, help="the audit trail of mutations, newest first (admin)"
    )
    audit.add_argument("--subject", default="", help="tokens/ID, jwt:SUB, certificate:CN")
    audit.add_argument("--method", default="", help="an RPC, e.g. StartRun")
    audit.add_argument("--resource", default="", help="e.g. runs/ID, quotas/NAME")
    audit.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    audit.set_defaults(handler=list_audit)


def _roles(values: Any) -> str:
    return ",".join(role_name(v) for v in values)


def list_tokens(args: argparse.Namespace, ctx: Context) -> int:
    tokens = ctx.client().list_tokens(show_revoked=args.all)
    if ctx.json:
        ctx.print_message(identity_service_pb2.ListTokensResponse(tokens=tokens))
        return 0
    if not tokens:
        ctx.out.print("no tokens")
        return 0
    table = Table("TOKEN", "NAME", "TENANT", "ROLES", "CREATED", "EXPIRES", "REVOKED")
    for token in tokens:
        table.add_row(
            token.name,
            token.display_name,
            token.tenant,
            _roles(token.roles),
            format_time(token.create_time),
            format_time(token.expire_time),
            format_time(token.revoke_time),
        )
    ctx.out.print(table)
    return 0


def create_token(args: argparse.Namespace, ctx: Context) -> int:
    if args.db is not None:
        return _create_offline(args, ctx)
    response = ctx.client().create_token(
        args.name, args.role, tenant=args.tenant, ttl_seconds=args.ttl
    )
    if ctx.json:
        ctx.print_message(response)
    else:
        _print_new(ctx, response.token.name, response.secret)
    return 0


def _print_new(ctx: Context, name: str, secret: str) -> None:
    ctx.print_plain(secret)
    print(f"created {name}; the secret above is shown only now", file=sys.stderr)


def _create_offline(args: argparse.Namespace, ctx: Context) -> int:
    try:
        module = importlib.import_module("podium.server.bootstrap")
        principal = importlib.import_module("podium.identity.principal")
    except ModuleNotFoundError as error:
        if error.name not in _SERVER_MODULES:
            raise
        raise UsageError("tokens create --db needs the 'podium' distribution installed") from None
    errors = importlib.import_module("podium.core.errors")
    roles = frozenset(principal.Role(int(role_value(r))) for r in args.role)
    tenant = args.tenant or principal.DEFAULT_TENANT
    try:
        token = asyncio.run(
            module.create_token_offline(args.db, args.name, tenant, roles, args.ttl)
        )
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except errors.PodiumError as error:
        print(f"error: INVALID_ARGUMENT: {error.message}", file=sys.stderr)
        return 1
    _print_new(ctx, token.record.name, token.secret)
    return 0


def revoke_token(args: argparse.Namespace, ctx: Context) -> int:
    token = ctx.client().revoke_token(args.token_name)
    if ctx.json:
        ctx.print_message(token)
    else:
        ctx.out.print(f"revoked {token.name}", highlight=False)
    return 0


def show_caller(args: argparse.Namespace, ctx: Context) -> int:
    caller = ctx.client().get_caller()
    if ctx.json:
        ctx.print_message(caller)
    else:
        ctx.out.print(
            f"{caller.subject} tenant {caller.tenant} roles {_roles(caller.roles)}",
            highlight=False,
        )
    return 0


def list_audit(args: argparse.Namespace, ctx: Context) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    records = []
    for record in ctx.client().list_audit_records(
        subject=args.subject,
        method=args.method,
        resource=args.resource,
        page_size=min(args.limit, 1000),
    ):
        records.append(record)
        if len(records) >= args.limit:
            break
    if ctx.json:
        ctx.print_message(identity_service_pb2.ListAuditRecordsResponse(records=records))
        return 0
    if not records:
        ctx.out.print("no audit records")
        return 0
    table = Table("TIME", "SUBJECT", "METHOD", "RESOURCE", "CODE", "REQUEST ID")
    for record in records:
        table.add_row(
            format_time(record.time),
            record.subject,
            record.method.rsplit("/", 1)[-1],
            record.resource,
            record.code,
            record.request_id,
        )
    ctx.out.print(table)
    return 0
