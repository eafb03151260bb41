"""Entry point of the `podium` command: parse, dispatch, and turn every failure into one line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata

from podium.cli import (
    alerts,
    completion,
    governance,
    identity,
    insights,
    plugin_template,
    plugins,
    runs,
    schedules,
    serve,
    server_info,
    worker,
    workflows,
)
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

# Set to see the traceback of an unexpected error instead of its one-line summary.
_DEBUG_ENV = "PODIUM_DEBUG"


def build_parser() -> ArgumentParser:
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
    serve.register(commands)
    worker.register(commands)
    workflows.register(commands)
    runs.register(commands)
    schedules.register(commands)
    governance.register(commands)
    alerts.register(commands)
    insights.register(commands)
    plugins.register(commands)
    plugin_template.register(commands)
    server_info.register(commands)
    identity.register(commands)
    completion.register(commands, parser)
    return parser


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
        args = build_parser().parse_args(argv)
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
