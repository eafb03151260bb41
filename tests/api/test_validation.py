"""Invalid definitions: INVALID_ARGUMENT with a BadRequest naming each field and
why, through CreateWorkflow and ValidateWorkflow alike, and nothing stored."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from podium.server.app import PodiumServer
from podium.testing import (
    Stubs,
    create_workflow,
    echo_step,
    error_info,
    field_violations,
    make_spec,
)
from podium.v1 import workflow_service_pb2

W = workflow_service_pb2

# Each case: a spec and the (field, words of the reason) every violation must match.
CASES: dict[str, tuple[dict[str, Any], list[tuple[str, str]]]] = {
    "cycle": (
        {"steps": [echo_step("a", "b"), echo_step("b", "a")]},
        [("spec.steps[0].depends_on", "a -> b -> a")],
    ),
    "longer cycle": (
        {
            "steps": [
                echo_step("start"),
                echo_step("x", "start", "z"),
                echo_step("y", "x"),
                echo_step("z", "y"),
            ]
        },
        [("spec.steps[1].depends_on", "x -> z -> y -> x")],
    ),
    "self dependency": (
        {"steps": [echo_step("solo", "solo")]},
        [("spec.steps[0].depends_on", "solo -> solo")],
    ),
    "unknown dependency": (
        {"steps": [echo_step("a"), echo_step("b", "a", "ghost")]},
        [("spec.steps[1].depends_on[1]", "ghost")],
    ),
    "unknown agent": (
        {"steps": [echo_step("a"), {"id": "b", "agent": "no-such-agent"}]},
        [("spec.steps[1].agent", "no-such-agent")],
    ),
    "missing agent": (
        {"steps": [{"id": "a"}]},
        [("spec.steps[0].agent", "required")],
    ),
    "duplicate step id": (
        {"steps": [echo_step("a"), echo_step("b"), echo_step("a")]},
        [("spec.steps[2].id", "duplicate")],
    ),
    "bad step id": (
        {"steps": [echo_step("has-dash")]},
        [("spec.steps[0].id", "has-dash")],
    ),
    "step id over 63 characters": (
        {"steps": [echo_step("s" * 64)]},
        [("spec.steps[0].id", "63")],
    ),
    "no steps": ({"steps": []}, [("spec.steps", "at least one step")]),
    "input does not compile": (
        {"steps": [echo_step("a", input={"x": "input.x +"})]},
        [("spec.steps[0].input.x", "invalid CEL")],
    ),
    "empty input expression": (
        {"steps": [echo_step("a", input={"x": "  "})]},
        [("spec.steps[0].input.x", "empty")],
    ),
    "input reads a step that is not an ancestor": (
        {
            "steps": [
                echo_step("a"),
                echo_step("b"),
                echo_step("c", "a", input={"v": "steps.b.output"}),
            ]
        },
        [("spec.steps[2].input.v", "not an ancestor")],
    ),
    "input reads a later sibling through index syntax": (
        {"steps": [echo_step("a", input={"v": "steps['b'].output"}), echo_step("b")]},
        [("spec.steps[0].input.v", "not an ancestor")],
    ),
    "input reads an unknown step": (
        {"steps": [echo_step("a", input={"v": "steps.nope.output"})]},
        [("spec.steps[0].input.v", "unknown step 'nope'")],
    ),
    "input reads steps dynamically": (
        {"steps": [echo_step("a"), echo_step("b", "a", input={"v": "steps[input.which].output"})]},
        [("spec.steps[1].input.v", "by name")],
    ),
    "output mapping does not compile": (
        {"steps": [echo_step("a")], "output": {"result": "steps.a.output.("}},
        [("spec.output.result", "invalid CEL")],
    ),
    "output mapping reads an unknown step": (
        {"steps": [echo_step("a")], "output": {"result": "steps.zzz.output"}},
        [("spec.output.result", "unknown step 'zzz'")],
    ),
    "unknown llm provider": (
        {
            "steps": [
                {"id": "ask", "agent": "llm", "config": {"provider": "nowhere", "prompt": "hi"}}
            ]
        },
        [("spec.steps[0].config.provider", "nowhere")],
    ),
    "bad llm settings": (
        {
            "steps": [
                {"id": "ask", "agent": "llm", "config": {"max_tokens": 0, "prompt": "{{ input. }}"}}
            ]
        },
        [
            ("spec.steps[0].config.prompt", "unexpected '.'"),
            ("spec.steps[0].config.max_tokens", "> 0"),
        ],
    ),
    "unknown echo setting": (
        {"steps": [echo_step("a", config={"dleay_ms": 5})]},
        [("spec.steps[0].config.dleay_ms", "unknown setting")],
    ),
    "negative delay": (
        {"steps": [echo_step("a", delay_ms=-5)]},
        [("spec.steps[0].config.delay_ms", ">= 0")],
    ),
    "negative max_concurrency": (
        {"steps": [echo_step("a")], "maxConcurrency": -1},
        [("spec.max_concurrency", "positive")],
    ),
}


def assert_violations(error: grpc.aio.AioRpcError, expected: list[tuple[str, str]]) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    info = error_info(error)
    assert info.domain == "podium"
    assert info.reason
    violations = field_violations(error)
    assert [field for field, _ in violations] == [field for field, _ in expected], violations
    for (field, description), (_, words) in zip(violations, expected, strict=True):
        assert words in description, (field, description)
        assert description.strip()
    # The status message names the fields as well, for clients that read only it.
    for field, _ in expected:
        assert field in (error.details() or "")


async def list_everything(stubs: Stubs) -> W.ListWorkflowsResponse:
    return await stubs.workflows.ListWorkflows(W.ListWorkflowsRequest(page_size=1000))


@pytest.mark.parametrize("case", list(CASES))
async def test_create_workflow_rejects_and_stores_nothing(stubs: Stubs, case: str) -> None:
    spec, expected = CASES[case]
    await create_workflow(stubs, "existing", {"steps": [echo_step("a")]})
    before = await list_everything(stubs)

    for workflow_id in ("fresh", "existing"):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await create_workflow(stubs, workflow_id, spec)
        assert_violations(error.value, expected)

    assert await list_everything(stubs) == before
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stubs.workflows.GetWorkflow(W.GetWorkflowRequest(name="workflows/fresh"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    latest = await stubs.workflows.GetWorkflow(W.GetWorkflowRequest(name="workflows/existing"))
    assert latest.workflow.version == 1


@pytest.mark.parametrize("case", list(CASES))
async def test_validate_workflow_rejects_alike(stubs: Stubs, case: str) -> None:
    spec, expected = CASES[case]
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stubs.workflows.ValidateWorkflow(W.ValidateWorkflowRequest(spec=make_spec(spec)))
    assert_violations(error.value, expected)
    assert list((await list_everything(stubs)).workflows) == []


async def test_the_fixed_definition_is_accepted(stubs: Stubs) -> None:
    """The same shapes as the failing cases, corrected, pass: the checks are
    about the defect, not the shape."""
    spec = {
        "steps": [
            echo_step("a", input={"x": "input.x + 1"}),
            echo_step("b", "a", input={"v": "steps['a'].output.x"}),
            echo_step("c", "b", input={"v": "steps.a.output"}),
            {
                "id": "ask",
                "agent": "llm",
                "dependsOn": ["c"],
                "config": {"provider": "simulated", "prompt": "{{ input }}"},
            },
        ],
        "output": {"result": "steps.ask.output.text"},
    }
    plan = await stubs.workflows.ValidateWorkflow(W.ValidateWorkflowRequest(spec=make_spec(spec)))
    assert list(plan.critical_path) == ["a", "b", "c", "ask"]
    created = await create_workflow(stubs, "fixed", spec)
    assert created.version == 1


@pytest.mark.parametrize(
    "workflow_id", ["", "Upper", "1starts-with-digit", "under_score", "has/slash", "x" * 64]
)
async def test_create_workflow_rejects_a_bad_workflow_id(stubs: Stubs, workflow_id: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create_workflow(stubs, workflow_id, {"steps": [echo_step("a")]})
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in field_violations(error.value)] == ["workflow_id"]
    assert list((await list_everything(stubs)).workflows) == []


async def test_longest_valid_workflow_id_is_accepted(stubs: Stubs) -> None:
    created = await create_workflow(stubs, "x" * 63, {"steps": [echo_step("a")]})
    assert created.name == "workflows/" + "x" * 63


MANY_PROBLEMS = {
    "steps": [
        echo_step("a", "ghost"),
        {"id": "b", "agent": "no-such-agent"},
        echo_step("a"),
        echo_step("c", input={"x": "input.x +", "y": "steps.b.output"}),
        {"id": "ask", "agent": "llm", "config": {"provider": "nowhere", "prompt": "hi"}},
    ],
    "output": {"bad": "steps.c.output.("},
}
MANY_FIELDS = {
    "spec.steps[0].depends_on[0]",
    "spec.steps[1].agent",
    "spec.steps[2].id",
    "spec.steps[3].input.x",
    "spec.steps[3].input.y",
    "spec.steps[4].config.provider",
    "spec.output.bad",
}


async def test_every_problem_is_listed_at_once(stubs: Stubs) -> None:
    for call in (
        stubs.workflows.ValidateWorkflow(W.ValidateWorkflowRequest(spec=make_spec(MANY_PROBLEMS))),
        stubs.workflows.CreateWorkflow(
            W.CreateWorkflowRequest(workflow_id="many", spec=make_spec(MANY_PROBLEMS))
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        fields = [field for field, _ in field_violations(error.value)]
        assert set(fields) == MANY_FIELDS
        assert len(fields) == len(MANY_FIELDS)
    assert list((await list_everything(stubs)).workflows) == []


async def test_bad_workflow_id_and_bad_spec_are_listed_together(stubs: Stubs) -> None:
    """One round trip should reveal every problem of a CreateWorkflow request,
    the workflow_id included (see the report: the id is checked first and
    alone)."""
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create_workflow(stubs, "Bad_Id", {"steps": [{"id": "a", "agent": "no-such-agent"}]})
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = {field for field, _ in field_violations(error.value)}
    assert fields == {"workflow_id", "spec.steps[0].agent"}


async def test_step_ids_follow_the_contract_pattern(stubs: Stubs) -> None:
    """workflow.proto: a step id is [a-z_][a-z0-9_]*; an upper-case id is not
    one (see the report: the server accepts [A-Za-z_][A-Za-z0-9_]*)."""
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stubs.workflows.ValidateWorkflow(
            W.ValidateWorkflowRequest(spec=make_spec({"steps": [echo_step("Fetch")]}))
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in field_violations(error.value)] == ["spec.steps[0].id"]


async def test_an_agent_whose_config_check_raises_is_a_field_error(
    stubs: Stubs, server: PodiumServer
) -> None:
    class Brittle:
        name = "brittle"
        description = "its config check has a bug"
        version = "1"

        async def run(self, ctx: object) -> None:
            return None

        def check_config(self, config: object, catalog: object) -> list[tuple[str, str]]:
            raise RuntimeError("boom")

    server.plugins.registry.add_agent(Brittle(), "test")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create_workflow(stubs, "brittle", {"steps": [{"id": "a", "agent": "brittle"}]})
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(error.value)
    assert [field for field, _ in violations] == ["spec.steps[0].config"]
    assert "boom" in violations[0][1]
