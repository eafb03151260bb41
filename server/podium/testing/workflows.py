"""Workflow definitions written as the YAML/JSON users write (the proto JSON
mapping), so that a test reads like the workflow it runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format

from podium.v1 import workflow_pb2

__all__ = ["FOREVER_MS", "echo_step", "make_spec"]

# An echo delay no test outlives (an hour): such a step ends only by what the
# test does to it (CancelRun, a timeout, a stopped server), never by itself,
# however slow the machine.
FOREVER_MS = 3_600_000


def make_spec(spec: Mapping[str, Any]) -> workflow_pb2.WorkflowSpec:
    """A WorkflowSpec from its proto JSON mapping, e.g.
    `{"steps": [{"id": "a", "agent": "echo"}]}`; raises ParseError on a
    field the contract does not have."""
    return json_format.ParseDict(dict(spec), workflow_pb2.WorkflowSpec())


def echo_step(step_id: str, *depends_on: str, delay_ms: float = 0, **fields: Any) -> dict[str, Any]:
    """A step of the builtin `echo` agent (it returns its input, after
    `delay_ms`): the neutral step for testing what happens around agents.
    `fields` are further Step fields in the JSON mapping (`input`,
    `forEach`, `retry`, ...)."""
    step: dict[str, Any] = {"id": step_id, "agent": "echo", "dependsOn": list(depends_on)}
    if delay_ms:
        step["config"] = {"delay_ms": delay_ms}
    step.update(fields)
    return step
