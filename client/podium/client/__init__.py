"""Python client for Podium: `Client` (blocking) and `AsyncClient` (asyncio).

The messages they take and return are the generated `podium.v1` protos; this package adds
name normalization, definition loading, Money <-> Decimal and decoded errors.
"""

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
