"""The argparse tree: global options, command groups, and one-line usage errors."""

from __future__ import annotations

import argparse
import difflib
import re
from typing import NoReturn

__all__ = [
    "ArgumentParser",
    "CommandFailed",
    "InvalidValue",
    "UsageError",
    "json_option",
    "leaf_options",
]


class UsageError(Exception):
    """A bad argument or an unreadable input: the CLI prints one line and exits 2."""


class CommandFailed(Exception):
    """A command that could not do what was asked, found by the CLI itself (an agent the
    server does not have): one line, exit 1, like a server error."""


class InvalidValue(Exception):
    """A value the client cannot even send (an unknown scope kind), found before the server
    would have said so: reported like the server's INVALID_ARGUMENT, one line naming the field,
    exit 1."""


class ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are exceptions, so main() prints exactly one line.

    argparse's default prints the whole usage block and exits from deep inside parse_args;
    subparsers inherit this class through add_subparsers().
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{_with_suggestion(message)} (see `{self.prog} --help`)")


# argparse's wording for a mistyped command or choice (Python 3.11-3.13).
_INVALID_CHOICE = re.compile(r"invalid choice: '(?P<value>[^']*)' \(choose from (?P<choices>.*)\)$")


def _with_suggestion(message: str) -> str:
    """`invalid choice: 'rnus' (choose from ...)` gains `did you mean 'runs'?`: the whole list
    of choices stays, since a typo can be far from every name."""
    match = _INVALID_CHOICE.search(message)
    if match is None:
        return message
    choices = re.findall(r"'([^']*)'", match.group("choices"))
    close = difflib.get_close_matches(match.group("value"), choices, n=1, cutoff=0.6)
    return f"{message}; did you mean {close[0]!r}?" if close else message


def leaf_options() -> ArgumentParser:
    """Options every command accepts after its name too (`podium runs get X --address A`).

    SUPPRESS leaves the top-level value in place unless the option is repeated here.
    """
    parent = ArgumentParser(add_help=False)
    parent.add_argument(
        "--address",
        default=argparse.SUPPRESS,
        help="server address host:port (default: $PODIUM_ADDRESS or 127.0.0.1:50051)",
    )
    add_credential_options(parent, argparse.SUPPRESS)
    return parent


def add_credential_options(parser: argparse.ArgumentParser, default: object) -> None:
    """--token and the client's TLS files, on the top level and after every command."""
    parser.add_argument(
        "--token",
        default=default,
        help="bearer token (an API token or a JWT; default: $PODIUM_TOKEN)",
    )
    parser.add_argument(
        "--tls-ca",
        default=default,
        metavar="PEM",
        help="connect with TLS, verifying the server against this CA (default: $PODIUM_TLS_CA)",
    )
    parser.add_argument(
        "--tls-cert",
        default=default,
        metavar="PEM",
        help="client certificate for mTLS (default: $PODIUM_TLS_CERT)",
    )
    parser.add_argument(
        "--tls-key",
        default=default,
        metavar="PEM",
        help="the client certificate's key (default: $PODIUM_TLS_KEY)",
    )


def json_option() -> ArgumentParser:
    parent = ArgumentParser(add_help=False)
    parent.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the proto JSON mapping instead of a table",
    )
    return parent
