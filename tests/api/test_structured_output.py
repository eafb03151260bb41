"""Structured LLM output: the `llm` step's response_format asks for JSON, the
answer is parsed and checked, and the object is the step's output, so a
planner's items fan out with no string splitting (examples/planner.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from podium.client.definitions import load_definition
from podium.testing import (
    ScriptedProvider,
    create_workflow,
    plain,
    plugins_with,
    run_to_end,
    serving,
    step_of,
    text_reply,
)
from podium.v1 import run_pb2

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "planner.yaml"


async def test_the_planner_example_fans_out_over_its_structured_plan(tmp_path: Path) -> None:
    request = load_definition(EXAMPLE)
    async with serving(str(tmp_path / "podium.db")) as (_, stubs):
        await stubs.workflows.CreateWorkflow(request)
        run, _ = await run_to_end(stubs, "planner", {"topic": "the ERP roll-out"})
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED, run.failure.message
    plan = plain(step_of(run, "plan").output)
    sections = plan["sections"]
    assert 2 <= len(sections) <= 6
    for section in sections:
        assert set(section) == {"title", "words"}
        assert isinstance(section["words"], int) and 50 <= section["words"] <= 300
    output = plain(run.output)
    assert output["sections"] == sections
    assert len(output["drafts"]) == len(sections)
    # Each worker's prompt was rendered from its own item.
    assert all(isinstance(draft, str) and draft for draft in output["drafts"])
    assert step_of(run, "write").usage.calls == len(sections)


PLAN = {
    "type": "json_schema",
    "schema": {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": {"type": "string"}}},
    },
}


def _planner(provider: str = "simulated") -> dict[str, Any]:
    return {
        "steps": [
            {
                "id": "plan",
                "agent": "llm",
                "config": {"provider": provider, "prompt": "plan", "response_format": PLAN},
            },
            {
                "id": "each",
                "agent": "echo",
                "dependsOn": ["plan"],
                "forEach": {"items": "steps.plan.output.items"},
                "input": {"item": "item"},
            },
        ]
    }


async def test_a_scripted_answer_is_parsed_and_fanned_out(tmp_path: Path) -> None:
    model = ScriptedProvider(text_reply('{"items": ["a", "b", "c"]}'), name="scripted")
    plugins = plugins_with(providers=[model])
    async with serving(str(tmp_path / "podium.db"), plugins=plugins) as (_, stubs):
        await create_workflow(stubs, "w", _planner("scripted"))
        run, _ = await run_to_end(stubs, "w")
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED
    assert plain(step_of(run, "plan").output) == {"items": ["a", "b", "c"]}
    assert plain(step_of(run, "each").output) == [{"item": "a"}, {"item": "b"}, {"item": "c"}]
    sent = model.requests[0].response_format
    assert sent is not None and sent["type"] == "json_schema" and sent["name"] == "output"


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ('{"items": [1]}', "violates the response_format schema: at /items/0: 1 is not of type"),
        ("not json", "the model's answer is not JSON"),
    ],
)
async def test_an_answer_breaking_the_format_fails_with_invalid_output(
    tmp_path: Path, answer: str, words: str
) -> None:
    model = ScriptedProvider(text_reply(answer), name="scripted")
    plugins = plugins_with(providers=[model])
    async with serving(str(tmp_path / "podium.db"), plugins=plugins) as (_, stubs):
        await create_workflow(stubs, "w", _planner("scripted"))
        run, _ = await run_to_end(stubs, "w")
    plan = step_of(run, "plan")
    assert run.state == run_pb2.RUN_STATE_FAILED
    assert plan.failure.type == "podium.InvalidOutput"
    assert words in plan.failure.message
    assert len(plan.attempts) == 1
