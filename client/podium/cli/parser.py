"""The argparse tree: global options, command groups, and one-line usage errors."""

from __future__ import annotations

import argparse
from typing import NoReturn

__all__ = ["ArgumentParser", "InvalidValue", "UsageError", "json_option", "leaf_options"]


class UsageError(Exception):
    """A bad argument or an unreadable input: the CLI prints one line and exits 2."""


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
        raise UsageError(f"{message} (see `{self.prog} --help`)")


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
