"""Workflow definition files in the client (podium.client.definitions): YAML
or JSON, snake or camel case, the same request as a mapping; a bad file is
one line naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from podium.client import (
    DefinitionError,
    load_definition,
)

YAML_DEFINITION = """\
workflow_id: erp
spec:
  description: nightly ERP sync
  maxConcurrency: 2
  steps:
    - id: extract
      agent: echo
      config: {released: 2024-01-02, retries: 3}
    - id: load
      agent: echo
      depends_on: [extract]
      input: {rows: "steps.extract.output.rows"}
"""


def test_yaml_definition_accepts_snake_and_camel_case(tmp_path: Path) -> None:
    path = tmp_path / "erp.yaml"
    path.write_text(YAML_DEFINITION)
    request = load_definition(path)
    assert request.workflow_id == "erp"
    assert request.spec.max_concurrency == 2
    assert [s.id for s in request.spec.steps] == ["extract", "load"]
    assert list(request.spec.steps[1].depends_on) == ["extract"]
    assert request.spec.steps[1].input["rows"] == "steps.extract.output.rows"
    # Dates stay strings: a Struct cannot hold a datetime.
    assert request.spec.steps[0].config["released"] == "2024-01-02"


def test_json_file_and_mapping_give_the_same_request(tmp_path: Path) -> None:
    document = {"workflowId": "erp", "spec": {"steps": [{"id": "a", "agent": "echo"}]}}
    path = tmp_path / "erp.json"
    path.write_text(json.dumps(document))
    assert load_definition(str(path)) == load_definition(document)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.yaml", None, "missing.yaml: no such file"),
        ("bad.yaml", "spec: [unclosed", "bad.yaml: invalid YAML at line"),
        ("bad.json", "{nope}", "bad.json: invalid JSON at line 1 column 2"),
        ("list.yaml", "- a\n- b\n", "list.yaml: expected a mapping with 'workflow_id' and 'spec'"),
        ("empty.yaml", "", "empty.yaml: expected a mapping"),
        (
            "typo.yaml",
            "workflow_id: x\nspec: {stepz: []}\n",
            "typo.yaml: spec: unknown field 'stepz' (did you mean 'steps'?)",
        ),
        (
            "index.yaml",
            "workflow_id: x\nspec:\n  steps:\n    - {id: a, agent: echo}\n"
            "    - {id: b, agent: echo, depends_onn: [a]}\n",
            "index.yaml: spec.steps[1]: unknown field 'depends_onn' (did you mean 'depends_on'?)",
        ),
        (
            "nested.yaml",
            "workflow_id: x\nspec:\n  steps: [{id: a, agent: echo, retry: {max_atempts: 2}}]\n",
            "nested.yaml: spec.steps[0].retry: unknown field 'max_atempts' (did you mean",
        ),
        (
            "top.yaml",
            "workflow_id: x\nspecs: {}\n",
            "top.yaml: unknown field 'specs' (did you mean 'spec'?)",
        ),
        (
            "camel.yaml",
            "workflowId: x\nspec: {steps: [{id: a, agent: echo, dependsOn: []}], zzz: 1}\n",
            "camel.yaml: spec: unknown field 'zzz'",
        ),
        (
            "type.yaml",
            "workflow_id: x\nspec: {max_concurrency: lots}\n",
            "type.yaml: spec.max_concurrency:",
        ),
    ],
)
def test_bad_definition_files_raise_one_line(
    tmp_path: Path, name: str, content: str | None, expected: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(DefinitionError) as caught:
        load_definition(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path)), message
    assert expected in message
