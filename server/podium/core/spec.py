"""Workflow definitions as the engine reads them (contract: WorkflowSpec).

Durations are seconds (float) and instants are seconds since the epoch, so
the engine never sees protobuf types.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from podium.core.model import DEFAULT_TENANT

FailurePolicy = Literal["FAIL", "CONTINUE"]
TriggerRule = Literal["ALL_SUCCEEDED", "ALL_DONE", "ANY_SUCCEEDED"]
JitterMode = Literal["NONE", "FULL"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetrierSpec(_Frozen):
    error_equals: list[str] = Field(default_factory=list)
    interval: float = 1.0
    backoff_rate: float = 2.0
    max_interval: float | None = None
    max_attempts: int = 3
    jitter: JitterMode = "NONE"


class ForEachSpec(_Frozen):
    items: str
    max_concurrency: int = 0
    tolerated_failure_count: int = 0
    tolerated_failure_percent: float = 0.0
    # CEL giving each item's key; at most max_per_key items of a key at once.
    concurrency_key: str = ""
    max_per_key: int = 0


class RunConcurrencySpec(_Frozen):
    # CEL over `input`: runs with the same key share `max_runs` places.
    key: str
    max_runs: int


class LoopSpec(_Frozen):
    until: str
    max_iterations: int


class WaitSpec(_Frozen):
    duration: float | None = None
    time: float | None = None
    time_expression: str = ""


class ApprovalSpec(_Frozen):
    prompt: str = ""
    timeout: float | None = None


class WaitForSignalSpec(_Frozen):
    name: str
    filter: str = ""
    timeout: float | None = None


class ChildWorkflowSpec(_Frozen):
    """A step that runs another workflow as a child run (podium.engine.child_steps)."""

    name: str
    version: int = 0
    input: dict[str, str] = Field(default_factory=dict)


class CallbackSpec(_Frozen):
    timeout: float | None = None


class NotificationSpec(_Frozen):
    """Where a run's summary is POSTed when it ends, signed with a named secret."""

    url: str
    secret: str = ""


class CompensationSpec(_Frozen):
    agent: str
    input: dict[str, str] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)


class CacheSpec(_Frozen):
    ttl: float


class StepSpec(_Frozen):
    id: str
    agent: str = ""
    input: dict[str, str] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    description: str = ""
    retry: list[RetrierSpec] = Field(default_factory=list)
    attempt_timeout: float | None = None
    timeout: float | None = None
    on_failure: FailurePolicy = "FAIL"
    trigger_rule: TriggerRule = "ALL_SUCCEEDED"
    when: str = ""
    for_each: ForEachSpec | None = None
    loop: LoopSpec | None = None
    wait: WaitSpec | None = None
    approval: ApprovalSpec | None = None
    compensate: CompensationSpec | None = None
    cache: CacheSpec | None = None
    fail_fast: bool = False
    tools: list[str] = Field(default_factory=list)
    # Run the agent on a worker of this queue; "": in-process when loaded.
    task_queue: str = ""
    # A worker's heartbeats on an attempt must not lapse longer (None: 30s).
    heartbeat_timeout: float | None = None
    wait_for_signal: WaitForSignalSpec | None = None
    callback: CallbackSpec | None = None
    workflow: ChildWorkflowSpec | None = None
    # JSON Schema every output of the agent must satisfy (None: no check).
    output_schema: dict[str, Any] | None = None


class WorkflowSpec(_Frozen):
    description: str = ""
    steps: list[StepSpec] = Field(default_factory=list)
    output: dict[str, str] = Field(default_factory=dict)
    max_concurrency: int = 0
    labels: dict[str, str] = Field(default_factory=dict)
    retry: list[RetrierSpec] = Field(default_factory=list)
    timeout: float | None = None
    max_cost: Decimal | None = None
    notification: NotificationSpec | None = None
    # JSON Schemas of a run's input (checked by StartRun) and output.
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    run_concurrency: RunConcurrencySpec | None = None


class WorkflowVersion(BaseModel):
    """A stored version of a workflow."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    version: int
    spec: WorkflowSpec
    create_time: float
    # Workflow ids are unique within a tenant: (tenant, workflow_id) names one.
    tenant: str = DEFAULT_TENANT
    # The definition exactly as the client applied it, in the contract's wire form (a
    # serialized podium.v1.WorkflowSpec), so that reading it back gives what was written:
    # `spec` has its defaults filled in and its times as floats. Empty for versions stored
    # before it was kept; those are read back from `spec`.
    applied: bytes = b""
