"""`podium completion bash|zsh|tcsh`: a completion script generated from the argparse tree, so
it can never disagree with the commands that exist."""

from __future__ import annotations

import argparse
from typing import Any

import shtab

from podium.cli.context import Context
from podium.cli.parser import ArgumentParser

__all__ = ["register"]


def register(commands: Any, root: ArgumentParser) -> None:
    completion: ArgumentParser = commands.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh, tcsh, fish, powershell)",
        description=(
            'bash: eval "$(podium completion bash)" in ~/.bashrc;'
            " zsh: podium completion zsh > ~/.zfunc/_podium (a directory on $fpath)"
        ),
    )
    completion.add_argument("shell", choices=shtab.SUPPORTED_SHELLS, metavar="SHELL")
    completion.set_defaults(handler=_print_script, root=root)


def _print_script(args: argparse.Namespace, ctx: Context) -> int:
    ctx.print_plain(shtab.complete(args.root, shell=args.shell))
    return 0
