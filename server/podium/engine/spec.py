"""Workflow definitions as the engine reads them (contract: WorkflowSpec)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class StepSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    agent: str
    input: dict[str, str] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    description: str = ""


class WorkflowSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    description: str = ""
    steps: list[StepSpec] = Field(default_factory=list)
    output: dict[str, str] = Field(default_factory=dict)
    max_concurrency: int = 0
    labels: dict[str, str] = Field(default_factory=dict)


class WorkflowVersion(BaseModel):
    """A stored version of a workflow."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    version: int
    spec: WorkflowSpec
    create_time: float
