"""`podium workflows apply|list|get|validate|delete`."""

from __future__ import annotations

import argparse
from typing import Any

from podium.cli.context import Context
from podium.cli.parser import ArgumentParser, json_option, leaf_options
from podium.cli.render import validation, workflow_details, workflows_table
from podium.v1 import workflow_service_pb2

__all__ = ["register"]


def register(commands: Any) -> None:
    group: ArgumentParser = commands.add_parser(
        "workflows", help="store, read and check workflow definitions"
    )
    sub = group.add_subparsers(dest="workflows_command", metavar="COMMAND", required=True)
    common, read = [leaf_options()], [leaf_options(), json_option()]

    apply = sub.add_parser("apply", parents=read, help="store a definition as a new version")
    apply.add_argument("-f", "--file", required=True, help="YAML or JSON definition")
    apply.set_defaults(handler=apply_workflow)

    listing = sub.add_parser("list", parents=read, help="latest version of every workflow")
    listing.set_defaults(handler=list_workflows)

    get = sub.add_parser("get", parents=read, help="show one workflow version")
    get.add_argument("name", metavar="NAME", help="workflow id or workflows/ID")
    get.add_argument("--version", type=int, default=0, help="version number (default: latest)")
    get.set_defaults(handler=get_workflow)

    validate = sub.add_parser("validate", parents=read, help="check a definition, store nothing")
    validate.add_argument("-f", "--file", required=True, help="YAML or JSON definition")
    validate.set_defaults(handler=validate_workflow)

    delete = sub.add_parser("delete", parents=common, help="delete every version of a workflow")
    delete.add_argument("name", metavar="NAME", help="workflow id or workflows/ID")
    delete.set_defaults(handler=delete_workflow)


def apply_workflow(args: argparse.Namespace, ctx: Context) -> int:
    workflow = ctx.client().apply_workflow(args.file)
    if ctx.json:
        ctx.print_message(workflow)
    else:
        ctx.out.print(f"applied {workflow.name} version {workflow.version}", highlight=False)
    return 0


def list_workflows(args: argparse.Namespace, ctx: Context) -> int:
    workflows = list(ctx.client().list_workflows())
    if ctx.json:
        ctx.print_message(workflow_service_pb2.ListWorkflowsResponse(workflows=workflows))
    elif not workflows:
        ctx.out.print("no workflows")
    else:
        ctx.out.print(workflows_table(workflows))
    return 0


def get_workflow(args: argparse.Namespace, ctx: Context) -> int:
    workflow = ctx.client().get_workflow(args.name, version=args.version)
    if ctx.json:
        ctx.print_message(workflow)
    else:
        ctx.out.print(workflow_details(workflow))
    return 0


def validate_workflow(args: argparse.Namespace, ctx: Context) -> int:
    response = ctx.client().validate_workflow(args.file)
    if ctx.json:
        ctx.print_message(response)
    else:
        ctx.out.print(validation(response))
    return 0


def delete_workflow(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    client.delete_workflow(args.name)
    ctx.out.print(f"deleted {args.name}", highlight=False)
    return 0
