"""An audit record's request and resource are the messages' JSON with their
secrets redacted: converting with the secret fields left out first (so that
a huge run input is never converted) gives exactly what converting all of it
and then redacting would."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format, message
from hypothesis import given
from hypothesis import strategies as st

from podium.server import audit
from podium.v1 import (
    common_pb2,
    control_service_pb2,
    execution_service_pb2,
    identity_service_pb2,
    run_pb2,
    workflow_service_pb2,
)

# Keys that are secrets in the audit trail, mixed with ordinary ones.
KEYS = st.sampled_from(["input", "output", "token", "payload", "secret", "name", "n", "items"])
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=12,
)
MAPS = st.dictionaries(KEYS, JSON, max_size=4)


def converted_then_redacted(value: message.Message) -> Any:
    """What the record holds: all of it converted, then redacted, a run without its steps."""
    converted = json_format.MessageToDict(value)
    for run in (converted, converted.get("run")):
        if isinstance(run, dict) and "state" in run:  # a Run
            run.pop("steps", None)
    return audit._redact(converted)


def _struct(data: dict[str, Any]) -> Any:
    return json_format.ParseDict(data, run_pb2.Run().input)


@given(MAPS, MAPS, st.text(max_size=8), JSON)
def test_secret_fields_are_redacted_as_before_without_converting_them(
    run_input: dict[str, Any], output: dict[str, Any], text: str, payload: Any
) -> None:

    run = run_pb2.Run(
        name="runs/r1",
        state=run_pb2.RUN_STATE_SUCCEEDED,
        input=_struct(run_input),
        output=_struct(output),
        labels={"token": text, "team": "a"},
        cost=common_pb2.Money(currency_code="USD", units=1, nanos=5),
        last_sequence=2**40,
    )
    run.create_time.FromSeconds(1_700_000_000)
    step = run.steps.add(step_id="s")
    json_format.ParseDict(payload, step.output)
    run.steps.add(step_id="t")
    messages: list[message.Message] = [
        run,
        execution_service_pb2.StartRunResponse(run=run),
        execution_service_pb2.StartRunRequest(
            workflow="workflows/w", input=_struct(run_input), request_id=text
        ),
        execution_service_pb2.CompleteCallbackRequest(token=text, payload=step.output),
        identity_service_pb2.CreateTokenResponse(
            token=identity_service_pb2.Token(name="tokens/t"), secret=text
        ),
        control_service_pb2.UpdateQuotaRequest(),
        workflow_service_pb2.CreateWorkflowRequest(workflow_id="w"),
        execution_service_pb2.StartRunRequest(),
    ]
    for value in messages:
        # The path of a large message, whatever this one's size.
        assert audit._redact(audit._message_json(value)) == converted_then_redacted(value)
        assert list(audit._message_json(value)) == list(converted_then_redacted(value))
        assert audit._json(value) == converted_then_redacted(value)


@pytest.mark.parametrize("steps", [3, 2000])  # a small message, and one over CONVERT_WHOLE_BYTES
def test_a_run_is_recorded_without_its_steps(steps: int) -> None:
    run = run_pb2.Run(name="runs/r1", state=run_pb2.RUN_STATE_RUNNING)
    for index in range(steps):
        run.steps.add(step_id=f"step_{index}", agent="echo")
    reply = execution_service_pb2.StartRunResponse(run=run)
    assert (reply.ByteSize() > audit.CONVERT_WHOLE_BYTES) == (steps > 3)
    for value in (run, reply):
        recorded = audit._json(value)
        assert recorded is not None
        as_run = recorded.get("run", recorded)
        assert as_run == {"name": "runs/r1", "state": "RUN_STATE_RUNNING"}
    # The reply sent is not changed by its record.
    assert len(run.steps) == len(reply.run.steps) == steps


def test_a_large_message_reads_as_a_small_one_would() -> None:
    run = run_pb2.Run(name="runs/r1", input=_struct({"items": list(range(10_000))}))
    json_format.ParseDict({"token": "t", "n": [{"secret": 1}]}, run.output)
    for value in (run, execution_service_pb2.StartRunResponse(run=run)):
        assert value.ByteSize() > audit.CONVERT_WHOLE_BYTES
        assert audit._json(value) == converted_then_redacted(value)
