"""Audit records of mutations: who, tenant, what, when, the request (secrets
redacted) and the resource after the change."""

from __future__ import annotations

import uuid
from typing import Any

from google.protobuf import json_format, message

from podium.identity.ports import AuditRecord
from podium.identity.principal import Principal

REQUEST_ID_METADATA = "x-request-id"
REDACTED = "[redacted]"
# A run's input and output may hold secrets (an api_token field): the audit
# trail names the run, never its data; a new token's secret is shown once.
# A signal's or callback's payload is run data.
_SECRET_KEYS = frozenset({"input", "output", "secret", "callbackToken", "payload"})
# A callback token (CompleteCallback's `token`, a string) is a capability: whoever
# holds it completes the step. CreateToken's `token` is a message, kept.
_SECRET_STRINGS = frozenset({"token"})


def request_id_of(metadata: Any) -> str:
    for key, value in metadata or ():
        if key == REQUEST_ID_METADATA and isinstance(value, str) and value:
            return value[:200]
    return uuid.uuid4().hex


def record(
    *,
    now: float,
    principal: Principal,
    method: str,
    request_id: str,
    code: str,
    request: Any,
    response: Any,
    before: Any = None,
) -> AuditRecord:
    request_body = _json(request) or {}
    after = _json(response)
    return AuditRecord(
        time=now,
        subject=principal.subject,
        tenant=principal.tenant,
        method=method,
        resource=resource_of(method, request_body, after or {}),
        request_id=request_id,
        code=code,
        request=request_body,
        after=after,
        before=_json(before),
    )


def resource_of(method: str, request: dict[str, Any], after: dict[str, Any]) -> str:
    """The resource a mutation named or made, in the contract's names."""
    name = method.rsplit("/", 1)[-1]
    if name == "CreateWorkflow":
        return f"workflows/{request.get('workflowId', '')}"
    if name == "StartRun":
        return str(after.get("run", {}).get("name", ""))
    if name in ("ResolveApproval", "SignalRun"):
        return str(request.get("run", ""))
    if name == "CompleteCallback":
        return str(after.get("run", ""))
    if name == "UpdateQuota":
        return f"quotas/{request.get('quota', {}).get('name', '')}"
    if name == "UpdateBudget":
        return f"budgets/{request.get('budget', {}).get('name', '')}"
    if name == "UpdateAlerts":
        return "alerts"
    if name == "CreateToken":
        return str(after.get("token", {}).get("name", ""))
    prefix = {"DeleteQuota": "quotas/", "DeleteBudget": "budgets/", "ResetBreaker": "breakers/"}
    return prefix.get(name, "") + str(request.get("name", ""))


def _json(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, message.Message):
        return None
    body = json_format.MessageToDict(value)
    redacted = _redact(body)
    assert isinstance(redacted, dict)
    return redacted


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if _secret(k, v) else _redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(item) for item in value]
    return value


def _secret(key: str, value: Any) -> bool:
    return key in _SECRET_KEYS or (key in _SECRET_STRINGS and isinstance(value, str))
