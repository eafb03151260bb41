"""Python client for Podium: `Client` (blocking) and `AsyncClient` (asyncio).

The messages they take and return are the generated `podium.v1` protos; this package adds
name normalization, definition loading, Money <-> Decimal and decoded errors.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from podium.client._async_client import AsyncClient
    from podium.client._channel import ADDRESS_ENV, DEFAULT_ADDRESS
    from podium.client._credentials import TOKEN_ENV, TlsOptions
    from podium.client._flow import FlowPolicy
    from podium.client._sync_client import Client
    from podium.client._watch import TERMINAL_EVENT_TYPES, ReconnectPolicy
    from podium.client.definitions import DefinitionSource, load_definition
    from podium.client.enums import event_type_label, run_state_label, step_state_label
    from podium.client.errors import DefinitionError, PodiumError
    from podium.client.governance import scope_message, scope_text
    from podium.client.money import format_usd, from_decimal, to_decimal
    from podium.client.names import run_name, workflow_name
    from podium.client.values import json_value, to_python

__all__ = [
    "ADDRESS_ENV",
    "DEFAULT_ADDRESS",
    "TERMINAL_EVENT_TYPES",
    "TOKEN_ENV",
    "AsyncClient",
    "Client",
    "DefinitionError",
    "DefinitionSource",
    "FlowPolicy",
    "PodiumError",
    "ReconnectPolicy",
    "TlsOptions",
    "event_type_label",
    "format_usd",
    "from_decimal",
    "json_value",
    "load_definition",
    "run_name",
    "run_state_label",
    "scope_message",
    "scope_text",
    "step_state_label",
    "to_decimal",
    "to_python",
    "workflow_name",
]

# Where each name above lives. The package loads a module on the first use of
# one of its names (PEP 562): `podium serve`, a worker, or a command that only
# needs an address do not pay for the whole client (grpc stubs, YAML, rich).
_HOMES = {
    "ADDRESS_ENV": "podium.client._channel",
    "AsyncClient": "podium.client._async_client",
    "Client": "podium.client._sync_client",
    "DEFAULT_ADDRESS": "podium.client._channel",
    "DefinitionError": "podium.client.errors",
    "DefinitionSource": "podium.client.definitions",
    "FlowPolicy": "podium.client._flow",
    "PodiumError": "podium.client.errors",
    "ReconnectPolicy": "podium.client._watch",
    "TERMINAL_EVENT_TYPES": "podium.client._watch",
    "TOKEN_ENV": "podium.client._credentials",
    "TlsOptions": "podium.client._credentials",
    "event_type_label": "podium.client.enums",
    "format_usd": "podium.client.money",
    "from_decimal": "podium.client.money",
    "json_value": "podium.client.values",
    "load_definition": "podium.client.definitions",
    "run_name": "podium.client.names",
    "run_state_label": "podium.client.enums",
    "scope_message": "podium.client.governance",
    "scope_text": "podium.client.governance",
    "step_state_label": "podium.client.enums",
    "to_decimal": "podium.client.money",
    "to_python": "podium.client.values",
    "workflow_name": "podium.client.names",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
