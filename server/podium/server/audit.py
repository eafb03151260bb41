"""Audit records of mutations: who, tenant, what, when, the request (secrets
redacted) and the resource after the change.

A run is recorded without its steps (see _LEFT_OUT): the record says who
started, cancelled or resumed which run and how it stood, not what each of
its steps held."""

from __future__ import annotations

import functools
import uuid
from typing import Any

from google.protobuf import json_format, message
from google.protobuf.descriptor import Descriptor, FieldDescriptor

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
# Up to this size (wire bytes) a message is converted whole, then redacted.
CONVERT_WHOLE_BYTES = 16 * 1024
# Fields left out of the record, by message. A run's steps: a new run's are
# its workflow's steps, every one PENDING, and a run of 500 steps made each
# StartRun record 500 steps long, converted to JSON on the event loop (8 % of
# its samples in W1) and stored; CancelRun's reply holds every step's attempts.
_LEFT_OUT: dict[str, frozenset[str]] = {"podium.v1.Run": frozenset({"steps"})}


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
    # A small message is quicker to convert whole (one call into json_format),
    # from a copy without the fields left out; a large one is mostly run data,
    # redacted (and its fields left out) before it is converted.
    if value.ByteSize() > CONVERT_WHOLE_BYTES:
        converted = _message_json(value)
    elif _holds_left_out(value.DESCRIPTOR):
        converted = json_format.MessageToDict(_without_left_out(value))
    else:
        converted = json_format.MessageToDict(value)
    redacted = _redact(converted)
    assert isinstance(redacted, dict)
    return redacted


def _without_left_out(value: message.Message) -> message.Message:
    """A copy of a small message without the fields left out of the record."""
    copy = type(value)()
    copy.CopyFrom(value)
    _clear_left_out(copy)
    for field, field_value in copy.ListFields():
        if field.message_type is not None and field.message_type.full_name in _LEFT_OUT:
            for each in field_value if field.is_repeated else (field_value,):
                _clear_left_out(each)
    return copy


def _clear_left_out(value: message.Message) -> None:
    for name in _LEFT_OUT.get(value.DESCRIPTOR.full_name, ()):
        value.ClearField(name)


@functools.cache
def _holds_left_out(descriptor: Descriptor) -> bool:
    """Whether a message of this type is, or has a field of, a type with fields
    left out of the record (replies name a run at their top level)."""
    if descriptor.full_name in _LEFT_OUT:
        return True
    return any(
        field.message_type is not None and field.message_type.full_name in _LEFT_OUT
        for field in descriptor.fields
    )


def _message_json(value: message.Message) -> dict[str, Any]:
    """json_format.MessageToDict(value) with every secret field already
    [redacted]: a field is redacted before it is converted, since a run's
    input of 10,000 items took 45 ms of the event loop to convert, only to be
    replaced by "[redacted]". Nested messages are walked for their secrets;
    every other field (scalars, enums, maps, lists of scalars, well-known
    types) is converted by json_format itself, on a copy without the rest.
    Fields left out of the record (_LEFT_OUT) are not there at all."""
    left_out = _LEFT_OUT.get(value.DESCRIPTOR.full_name, frozenset())
    fields = [(f, v) for f, v in value.ListFields() if f.name not in left_out]
    converted: dict[str, Any] = {}
    rest: message.Message | None = None
    for field, field_value in fields:
        key = field.json_name
        if _secret(key, field_value):  # a string field is a str here, as in the dict
            converted[key] = REDACTED
        elif _is_plain_message(field):
            if field.is_repeated:
                converted[key] = [_message_json(item) for item in field_value]
            else:
                converted[key] = _message_json(field_value)
        else:
            if rest is None:
                rest = type(value)()
            _copy_field(rest, field, field_value)
    others = json_format.MessageToDict(rest) if rest is not None else {}
    # In field order, as MessageToDict would have it.
    return {
        field.json_name: converted.get(field.json_name, others.get(field.json_name))
        for field, _ in fields
        if field.json_name in converted or field.json_name in others
    }


def _is_plain_message(field: FieldDescriptor) -> bool:
    """A message field (or list of them) of our own: walked for secrets. Map
    entries and well-known types (google.protobuf.*, with JSON forms of their
    own) are left to json_format."""
    kind = field.message_type
    return (
        kind is not None
        and not kind.GetOptions().map_entry
        and not kind.full_name.startswith("google.protobuf.")
    )


def _copy_field(target: message.Message, field: FieldDescriptor, value: Any) -> None:
    if field.is_repeated:
        getattr(target, field.name).MergeFrom(value)
    elif field.message_type is not None:
        getattr(target, field.name).CopyFrom(value)
    else:
        setattr(target, field.name, value)


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if _secret(k, v) else _redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(item) for item in value]
    return value


def _secret(key: str, value: Any) -> bool:
    return key in _SECRET_KEYS or (key in _SECRET_STRINGS and isinstance(value, str))
