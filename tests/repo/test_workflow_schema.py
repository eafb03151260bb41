"""schemas/workflow.schema.json is what scripts/gen_workflow_schema.py makes
from the protos now, and it accepts every workflow in examples/ and refuses
what CreateWorkflow would refuse to parse (an unknown field, a wrong type)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "schemas" / "workflow.schema.json"
NOT_WORKFLOWS = {"policy.yaml"}


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_workflow_schema", REPO / "scripts" / "gen_workflow_schema.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_committed_schema_is_fresh() -> None:
    assert SCHEMA_FILE.read_text() == _generator().render(), (
        "schemas/workflow.schema.json is stale: run scripts/gen_workflow_schema.py"
    )


@pytest.mark.parametrize(
    "example",
    sorted(p.name for p in (REPO / "examples").glob("*.yaml") if p.name not in NOT_WORKFLOWS),
)
def test_every_example_is_valid(example: str) -> None:
    document = yaml.safe_load((REPO / "examples" / example).read_text())
    assert list(_validator().iter_errors(document)) == []


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"workflow_id": "w", "spec": {"stepz": []}}, "'stepz' was unexpected"),
        ({"workflow_id": "w", "spec": {"steps": [{"id": "a", "retry": {}}]}}, "is not of type"),
        (
            {"workflow_id": "w", "spec": {"steps": [{"id": "a", "on_failure": "MAYBE"}]}},
            "is not one of",
        ),
        ({"workflow_id": "w", "spec": {"timeout": "10 minutes"}}, "does not match"),
    ],
)
def test_mistakes_are_refused(document: dict[str, Any], words: str) -> None:
    errors = [error.message for error in _validator().iter_errors(document)]
    assert any(words in message for message in errors), errors


def test_fields_carry_their_proto_comments() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    step = schema["$defs"]["podium.v1.Step"]["properties"]
    assert "registered agent" in step["agent"]["description"]
    assert step["dependsOn"] == step["depends_on"]
