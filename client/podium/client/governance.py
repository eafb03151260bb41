"""Governance values from the text people type: scopes, quota dimensions, budget periods.

A scope is written "server", "provider:openai", "model:openai/gpt-4o", "agent:llm",
"workflow:erp" or "tenant:default", the same spelling the policy file uses.
"""

from __future__ import annotations

from podium.client.enums import _lookup
from podium.v1 import control_service_pb2

__all__ = [
    "alert_kind",
    "alert_kind_label",
    "breaker_state_label",
    "budget_period",
    "budget_period_label",
    "quota_dimension",
    "quota_dimension_label",
    "scope_kind",
    "scope_message",
    "scope_text",
]

_C = control_service_pb2
_KINDS = {
    "server": _C.SCOPE_KIND_SERVER,
    "provider": _C.SCOPE_KIND_PROVIDER,
    "model": _C.SCOPE_KIND_MODEL,
    "agent": _C.SCOPE_KIND_AGENT,
    "workflow": _C.SCOPE_KIND_WORKFLOW,
    "tenant": _C.SCOPE_KIND_TENANT,
}
_NAMES = {number: name for name, number in _KINDS.items()}
_SCOPE_HINT = (
    "use server, provider:<name>, model:<provider>/<model>, agent:<name>, workflow:<id> "
    "or tenant:<name>"
)


def scope_kind(text: str) -> control_service_pb2.ScopeKind.ValueType:
    """The ScopeKind of "provider", "agent", ...; ValueError for anything else."""
    kind = _KINDS.get(text.strip().lower())
    if kind is None:
        raise ValueError(f"unknown scope {text.strip()!r}: {_SCOPE_HINT}")
    return kind


def scope_message(text: str, *, value_required: bool = True) -> control_service_pb2.Scope:
    """ "provider:openai" as a Scope; ValueError saying what is wrong.

    With value_required=False a bare kind ("provider": every provider) is accepted too.
    """
    kind_text, _, value = text.strip().partition(":")
    kind = scope_kind(kind_text)
    if kind == _C.SCOPE_KIND_SERVER:
        if value:
            raise ValueError("the server scope takes no value")
        return control_service_pb2.Scope(kind=kind)
    if not value and value_required:
        raise ValueError(f"scope {kind_text!r} needs a value, as in {kind_text}:<name>")
    if value and kind == _C.SCOPE_KIND_MODEL and "/" not in value:
        raise ValueError("a model scope is model:<provider>/<model>")
    return control_service_pb2.Scope(kind=kind, value=value)


def scope_text(scope: control_service_pb2.Scope) -> str:
    """ "provider:openai" for a Scope; the kind's number for kinds this client does not know."""
    name = _NAMES.get(scope.kind)
    if name == "server":
        return "server"
    if name is None:
        name = str(scope.kind) if scope.kind else "?"
    return f"{name}:{scope.value}" if scope.value else name


def quota_dimension(value: int | str) -> control_service_pb2.QuotaDimension.ValueType:
    """A QuotaDimension from "requests", "input_tokens", ..., "concurrency" (any case)."""
    if isinstance(value, int):
        return control_service_pb2.QuotaDimension.ValueType(value)
    names = list(control_service_pb2.QuotaDimension.keys())
    return control_service_pb2.QuotaDimension.Value(
        _lookup(names, "QUOTA_DIMENSION_", value, "quota dimension")
    )


def budget_period(value: int | str) -> control_service_pb2.BudgetPeriod.ValueType:
    """A BudgetPeriod from "none", "day" or "month" (any case)."""
    if isinstance(value, int):
        return control_service_pb2.BudgetPeriod.ValueType(value)
    names = list(control_service_pb2.BudgetPeriod.keys())
    return control_service_pb2.BudgetPeriod.Value(
        _lookup(names, "BUDGET_PERIOD_", value, "budget period")
    )


def alert_kind(value: int | str) -> control_service_pb2.AlertKind.ValueType:
    """An AlertKind from "budget_threshold", "breaker_opened", "breaker_closed",
    "quota_wait" or "budget_wait" (any case)."""
    if isinstance(value, int):
        return control_service_pb2.AlertKind.ValueType(value)
    names = list(control_service_pb2.AlertKind.keys())
    return control_service_pb2.AlertKind.Value(_lookup(names, "ALERT_KIND_", value, "alert kind"))


def alert_kind_label(value: int) -> str:
    """ "quota_wait" for ALERT_KIND_QUOTA_WAIT; the number for unknown values."""
    return _label(control_service_pb2.AlertKind, value, "ALERT_KIND_")


def _label(enum: object, value: int, prefix: str) -> str:
    try:
        name: str = enum.Name(value)  # type: ignore[attr-defined]
    except ValueError:
        return str(value)
    return name.removeprefix(prefix).lower()


def quota_dimension_label(value: int) -> str:
    """ "requests" for QUOTA_DIMENSION_REQUESTS; the number for unknown values."""
    return _label(control_service_pb2.QuotaDimension, value, "QUOTA_DIMENSION_")


def budget_period_label(value: int) -> str:
    """ "day" for BUDGET_PERIOD_DAY, "none" for unset; the number for unknown values."""
    if value == _C.BUDGET_PERIOD_UNSPECIFIED:
        return "none"
    return _label(control_service_pb2.BudgetPeriod, value, "BUDGET_PERIOD_")


def breaker_state_label(value: int) -> str:
    """ "OPEN" for BREAKER_STATE_OPEN; the number for unknown values."""
    return _label(control_service_pb2.BreakerState, value, "BREAKER_STATE_").upper()
