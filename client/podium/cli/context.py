"""What a command handler gets: parsed options, the consoles and a lazily opened client."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from podium.client._channel import resolve_address
from podium.client._credentials import TlsOptions, resolve_tls, resolve_token

if TYPE_CHECKING:
    # Loaded on first use: `podium serve` and `podium worker` print through
    # logging and open no client, and should not pay for rich and the stubs.
    from google.protobuf import message
    from rich.console import Console

    from podium.client import Client

__all__ = ["Context"]

_PIPE_WIDTH = 200


class Context:
    def __init__(self, args: argparse.Namespace, out: Console | None = None) -> None:
        self.args = args
        self._out = out
        self._client: Client | None = None

    @property
    def out(self) -> Console:
        """The console for tables and live views, made on first use."""
        if self._out is None:
            self._out = _stdout_console()
        return self._out

    @property
    def address(self) -> str:
        return resolve_address(getattr(self.args, "address", None))

    @property
    def token(self) -> str | None:
        return resolve_token(getattr(self.args, "token", None))

    @property
    def tls(self) -> TlsOptions | None:
        ca, cert, key = (
            getattr(self.args, name, None) for name in ("tls_ca", "tls_cert", "tls_key")
        )
        if ca is None and cert is None and key is None:
            return resolve_tls(None)
        return TlsOptions(ca, cert, key)

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def client(self) -> Client:
        """The client, connected on first use so that local commands never open a channel."""
        if self._client is None:
            from podium.client import Client

            self._client = Client(self.address, token=self.token, tls=self.tls)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def print_message(self, msg: message.Message) -> None:
        from podium.cli.formatting import message_json

        self.print_plain(message_json(msg))

    def print_plain(self, text: str) -> None:
        """Text written as is: JSON and event lines must not be wrapped or styled by rich."""
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def _stdout_console() -> Console:
    from rich.console import Console

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped output has no width to respect; rich's 80-column fallback would cut run names.
        console = Console(width=_PIPE_WIDTH)
    return console
