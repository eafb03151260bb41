"""What a command handler gets: parsed options, the consoles and a lazily opened client."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field

from google.protobuf import message
from rich.console import Console

from podium.cli.formatting import message_json
from podium.client import Client
from podium.client._channel import resolve_address
from podium.client._credentials import TlsOptions, resolve_tls, resolve_token

__all__ = ["Context"]

_PIPE_WIDTH = 200


@dataclass
class Context:
    args: argparse.Namespace
    out: Console = field(default_factory=lambda: _stdout_console())
    _client: Client | None = None

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
            self._client = Client(self.address, token=self.token, tls=self.tls)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def print_message(self, msg: message.Message) -> None:
        self.print_plain(message_json(msg))

    def print_plain(self, text: str) -> None:
        """Text written as is: JSON and event lines must not be wrapped or styled by rich."""
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def _stdout_console() -> Console:
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped output has no width to respect; rich's 80-column fallback would cut run names.
        console = Console(width=_PIPE_WIDTH)
    return console
