"""Governance scopes in the client (podium.client.governance): their text form
round-trips, a bad one is a ValueError naming the field."""

from __future__ import annotations

import pytest

from podium.client import scope_message, scope_text
from podium.client._requests import update_budget
from podium.v1 import control_service_pb2, event_pb2, run_pb2

C, E, R = control_service_pb2, event_pb2, run_pb2


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("server", C.SCOPE_KIND_SERVER, ""),
        ("provider:openai", C.SCOPE_KIND_PROVIDER, "openai"),
        ("model:openai/gpt-4o", C.SCOPE_KIND_MODEL, "openai/gpt-4o"),
        ("agent:llm", C.SCOPE_KIND_AGENT, "llm"),
        ("workflow:erp", C.SCOPE_KIND_WORKFLOW, "erp"),
        ("tenant:default", C.SCOPE_KIND_TENANT, "default"),
    ],
)
def test_scopes_round_trip(text: str, kind: int, value: str) -> None:
    scope = scope_message(text)
    assert (scope.kind, scope.value) == (kind, value)
    assert scope_text(scope) == text


@pytest.mark.parametrize("text", ["planet:x", "provider", "server:x", "model:gpt-4o", ""])
def test_bad_scopes_are_value_errors(text: str) -> None:
    with pytest.raises(ValueError, match=r"budget\.scope: "):
        update_budget("b", text, "1", "none", "UTC", 0.8)
