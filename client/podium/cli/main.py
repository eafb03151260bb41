"""Entry point of the `podium` command: parse, dispatch, and turn every failure into one line."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata

from podium.cli.context import Context
from podium.cli.parser import (
    ArgumentParser,
    CommandFailed,
    InvalidValue,
    UsageError,
    add_credential_options,
)
from podium.client import DefinitionError, PodiumError

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace, Context], int]

# The command modules, in the order `podium --help` lists them.
_COMMAND_MODULES = (
    "serve",
    "worker",
    "workflows",
    "runs",
    "schedules",
    "governance",
    "alerts",
    "insights",
    "plugins",
    "plugin_template",
    "server_info",
    "identity",
)
# Long-running processes parsed with their own command only: a server or a
# worker restarted by a supervisor should not import every other command's
# tables and formatting first (see _parse).
_STANDALONE = ("serve", "worker")
_HELP_OPTIONS = frozenset({"-h", "--help", "--version"})

# Set to see the traceback of an unexpected error instead of its one-line summary.
_DEBUG_ENV = "PODIUM_DEBUG"


def build_parser(only: str | None = None) -> ArgumentParser:
    """The `podium` parser; with `only`, just that command's (see _parse)."""
    parser = ArgumentParser(
        prog="podium", description="Podium: a control plane for AI-agent workflows."
    )
    parser.add_argument(
        "--address",
        default=None,
        help="server address host:port (default: $PODIUM_ADDRESS or 127.0.0.1:50051)",
    )
    parser.add_argument(
        "--json", action="store_true", default=False, help="print JSON (read commands)"
    )
    parser.add_argument(
        "--version", action="version", version=f"podium {_version()}", help="print the version"
    )
    add_credential_options(parser, None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in (only,) if only else _COMMAND_MODULES:
        importlib.import_module(f"podium.cli.{name}").register(commands)
    if only is None:
        importlib.import_module("podium.cli.completion").register(commands, parser)
    return parser


def _parse(argv: list[str]) -> argparse.Namespace:
    """The parsed command line. `serve` and `worker` are first tried with a
    parser of their command alone; anything that parser refuses (another
    command, a usage error, help) is parsed again by the whole one, so every
    message is the whole parser's."""
    if not _HELP_OPTIONS.intersection(argv):
        for name in _STANDALONE:
            if name in argv:
                try:
                    return build_parser(only=name).parse_args(argv)
                except (UsageError, SystemExit):
                    break
    return build_parser().parse_args(argv)


def _version() -> str:
    """The CLI's distribution version (and the server's, when it is installed here too)."""
    try:
        client = metadata.version("podium-client")
    except metadata.PackageNotFoundError:
        return "unknown (not installed as a distribution)"
    try:
        server = metadata.version("podium")
    except metadata.PackageNotFoundError:
        return client
    return client if server == client else f"{client} (server package {server})"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 failed, 2 usage, 130 interrupted)."""
    try:
        return _run(argv)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (`| head`) went away: stop quietly, and keep Python's exit-time flush
        # from raising the same error again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _run(argv: Sequence[str] | None) -> int:
    try:
        args = _parse(list(sys.argv[1:] if argv is None else argv))
    except UsageError as error:
        return _fail(str(error), 2)
    except SystemExit as exit_:
        # --help and --version end parsing through SystemExit; keep main() returning codes.
        return exit_.code if isinstance(exit_.code, int) else 0
    ctx = Context(args)
    handler: Handler = args.handler
    try:
        return handler(args, ctx)
    except (UsageError, DefinitionError) as error:
        return _fail(str(error), 2)
    except CommandFailed as error:
        return _fail(str(error), 1)
    except InvalidValue as error:
        return _fail(f"INVALID_ARGUMENT: {error}", 1)
    except PodiumError as error:
        if error.unreachable:
            return _fail(
                f"cannot reach the Podium server at {ctx.address} (is `podium serve` running?)", 1
            )
        return _fail(f"{error.code_name}: {error.detail}", 1)
    except ValueError as error:
        # Raised by the client before anything is sent (a malformed name, a non-JSON input).
        return _fail(str(error), 2)
    except (KeyboardInterrupt, BrokenPipeError):
        raise
    except Exception as error:
        if os.environ.get(_DEBUG_ENV):
            raise
        return _fail(
            f"unexpected {type(error).__name__}: {error} (set {_DEBUG_ENV}=1 for details)", 1
        )
    finally:
        ctx.close()


def _fail(message: str, code: int) -> int:
    sys.stdout.flush()
    print("error: " + " ".join(message.split()), file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
