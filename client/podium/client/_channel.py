"""Where the server is and how to open a channel to it."""

from __future__ import annotations

import os

__all__ = [
    "ADDRESS_ENV",
    "CHANNEL_OPTIONS",
    "DEFAULT_ADDRESS",
    "DEFAULT_TIMEOUT",
    "resolve_address",
]

DEFAULT_ADDRESS = "127.0.0.1:50051"
ADDRESS_ENV = "PODIUM_ADDRESS"
# Unary calls are short; a hung server should surface as DEADLINE_EXCEEDED, not a hung caller.
DEFAULT_TIMEOUT = 30.0

CHANNEL_OPTIONS: list[tuple[str, str | int]] = [
    ("grpc.primary_user_agent", "podium-client"),
    # Runs carry step inputs and outputs; gRPC's 4 MiB default is small for a whole run.
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


def resolve_address(address: str | None) -> str:
    """The explicit address, else $PODIUM_ADDRESS, else 127.0.0.1:50051."""
    if address:
        return address
    return os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS
