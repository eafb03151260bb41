"""The `react` agent end to end through gRPC, on the simulated provider's
scripted tool calling: events, output, tool failures fed back to the model,
max_turns. The provider's script on its own is in
tests/unit/plugins/builtin/test_simulated_provider.py."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from podium.testing import (
    Stubs,
    create_workflow,
    field_violations,
    money_nanos,
    of_type,
    plain,
    run_to_end,
)
from podium.v1 import event_pb2, run_pb2

E = event_pb2
R = run_pb2

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "react.yaml"
STEP_EVENTS = frozenset(
    {
        E.RUN_EVENT_TYPE_LLM_CALL,
        E.RUN_EVENT_TYPE_TOOL_CALLED,
        E.RUN_EVENT_TYPE_TOOL_RESULT,
        E.RUN_EVENT_TYPE_STEP_PROGRESS,
        E.RUN_EVENT_TYPE_STEP_SUCCEEDED,
        E.RUN_EVENT_TYPE_STEP_FAILED,
    }
)


def react_step(
    script: list[Any] | None,
    tools: list[str],
    *,
    step_id: str = "agent",
    **config: Any,
) -> dict[str, Any]:
    options = {"latency_ms": 0, **({"script": script} if script is not None else {})}
    return {
        "id": step_id,
        "agent": "react",
        "tools": tools,
        "config": {"prompt": "What is 6 times 7, as text?", "options": options, **config},
    }


def calls(*names_and_arguments: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"tool_calls": [{"name": n, "arguments": a} for n, a in names_and_arguments]}


def story(events: list[event_pb2.RunEvent]) -> list[tuple[str, str]]:
    """The step's events as (type, tool or message), in order."""
    out = []
    for event in events:
        if event.type not in STEP_EVENTS:
            continue
        kind = E.RunEventType.Name(event.type).removeprefix("RUN_EVENT_TYPE_")
        detail = event.tool or (
            event.message if event.type == E.RUN_EVENT_TYPE_STEP_PROGRESS else ""
        )
        out.append((kind, detail))
    return out


def output_of(run: Any, index: int = 0) -> Any:
    return plain(run.steps[index].output)


# the example workflow


async def test_the_example_runs_offline_calling_calculator_then_json_query(
    stubs: Stubs,
) -> None:
    example = yaml.safe_load(EXAMPLE.read_text())
    assert example["spec"]["steps"][0]["tools"] == ["calculator", "json_query", "current_time"]
    await create_workflow(stubs, example["workflow_id"], example["spec"])
    run, events = await run_to_end(stubs, example["workflow_id"])
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure

    assert story(events) == [
        ("LLM_CALL", ""),
        ("TOOL_CALLED", "calculator"),
        ("TOOL_RESULT", "calculator"),
        ("STEP_PROGRESS", "turn 1: 1 tool call"),
        ("LLM_CALL", ""),
        ("TOOL_CALLED", "json_query"),
        ("TOOL_RESULT", "json_query"),
        ("STEP_PROGRESS", "turn 2: 1 tool call"),
        ("LLM_CALL", ""),
        ("STEP_SUCCEEDED", ""),
    ]
    called = of_type(events, E.RUN_EVENT_TYPE_TOOL_CALLED)
    results = of_type(events, E.RUN_EVENT_TYPE_TOOL_RESULT)
    assert json.loads(called[0].message) == {"expression": "3 * 12.50 * 1.2"}
    assert plain(results[0].output) == 45
    # "$last_result" in the script became the calculator's result.
    second = json.loads(called[1].message)
    assert second["data"] == {"total": 45.0, "limit": 30}
    sentence = "the total 45 is over the approval limit of 30"
    assert plain(results[1].output) == sentence
    assert all(not r.HasField("failure") for r in results)

    answer = f"Order A-17: {sentence}."
    assert plain(run.output) == {"answer": answer, "turns": 3}
    output = output_of(run)
    assert output["answer"] == answer
    assert output["turns"] == 3
    assert output["trace"] == [
        {
            "turn": 1,
            "tool": "calculator",
            "arguments": {"expression": "3 * 12.50 * 1.2"},
            "result": 45,
        },
        {"turn": 2, "tool": "json_query", "arguments": second, "result": sentence},
    ]
    llm_calls = of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)
    assert [(c.provider, c.model) for c in llm_calls] == [("simulated", "sim-small")] * 3
    # The conversation grows each turn: so does the input.
    inputs = [c.usage.input_tokens for c in llm_calls]
    assert inputs == sorted(inputs) and len(set(inputs)) == 3
    assert output["usage"] == {
        "input_tokens": sum(inputs),
        "output_tokens": sum(c.usage.output_tokens for c in llm_calls),
    }
    nanos = sum(money_nanos(c.cost) for c in llm_calls)
    assert nanos > 0
    assert Decimal(output["cost"]) * 1_000_000_000 == pytest.approx(nanos, abs=1)
    assert money_nanos(run.steps[0].cost) == nanos
    assert run.steps[0].usage.calls == 3


# tools the step lists, tools the model asks for


async def test_a_step_listing_an_unknown_tool_is_rejected(stubs: Stubs) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create_workflow(
            stubs, "bad-tools", {"steps": [react_step(None, ["no_such_tool", "calculator"])]}
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(error.value)
    assert [field for field, _ in violations] == ["spec.steps[0].tools[0]"]
    assert "no_such_tool" in violations[0][1]


async def test_a_tool_not_listed_for_the_step_fails_and_the_model_carries_on(
    stubs: Stubs,
) -> None:
    script = [
        calls(("current_time", {"timezone": "UTC"})),
        calls(("calculator", {"expression": "6 * 7"})),
        {"text": "6 times 7 is $last_result"},
    ]
    await create_workflow(stubs, "unlisted", {"steps": [react_step(script, ["calculator"])]})
    run, events = await run_to_end(stubs, "unlisted")
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure

    results = of_type(events, E.RUN_EVENT_TYPE_TOOL_RESULT)
    assert [(r.tool, r.HasField("failure")) for r in results] == [
        ("current_time", True),
        ("calculator", False),
    ]
    assert results[0].failure.type == "podium.UnknownTool"
    assert "not one of this step's tools (calculator)" in results[0].failure.message
    output = output_of(run)
    assert output["answer"] == "6 times 7 is 42"
    assert output["turns"] == 3
    first, second = output["trace"]
    assert first["tool"] == "current_time" and "result" not in first
    assert "not one of this step's tools" in first["error"]
    assert second == {
        "turn": 2,
        "tool": "calculator",
        "arguments": {"expression": "6 * 7"},
        "result": 42,
    }


async def test_a_failing_tool_is_reported_to_the_model_as_an_error(stubs: Stubs) -> None:
    # The last turn echoes the tool message the model received.
    script = [calls(("calculator", {"expression": "1 / 0"})), {"text": "$last_result"}]
    await create_workflow(stubs, "div0", {"steps": [react_step(script, ["calculator"])]})
    run, events = await run_to_end(stubs, "div0")
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    (result,) = of_type(events, E.RUN_EVENT_TYPE_TOOL_RESULT)
    assert result.failure.type == "CalculatorError"
    assert "division by zero" in result.failure.message
    output = output_of(run)
    assert output["answer"].startswith("error: ")
    assert "division by zero" in output["answer"]
    assert "division by zero" in output["trace"][0]["error"]


async def test_arguments_that_break_the_tools_schema_are_refused_before_the_tool_runs(
    stubs: Stubs,
) -> None:
    # The model forgets `expression` and adds an argument the tool does not take; then corrects
    # itself. The tool never sees the bad call; the model gets the violations as its result.
    script = [
        calls(("calculator", {"expresion": "2 + 2"})),
        calls(("calculator", {"expression": 7})),
        calls(("calculator", {"expression": "2 + 2"})),
        {"text": "$last_result"},
    ]
    await create_workflow(stubs, "typo", {"steps": [react_step(script, ["calculator"])]})
    run, events = await run_to_end(stubs, "typo")
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    first, second, third = of_type(events, E.RUN_EVENT_TYPE_TOOL_RESULT)
    assert first.failure.type == "podium.InvalidToolArguments"
    assert not first.failure.retryable
    assert "'expression' is a required property" in first.failure.message
    assert second.failure.type == "podium.InvalidToolArguments"
    assert "/expression: 7 is not of type 'string'" in second.failure.message
    assert not third.HasField("failure")
    trace = output_of(run)["trace"]
    assert "do not match its parameters" in trace[0]["error"]
    assert trace[2]["result"] == 4


async def test_several_tool_calls_in_one_turn_run_in_order(stubs: Stubs) -> None:
    script = [
        calls(
            ("calculator", {"expression": "2 + 2"}),
            ("json_query", {"data": [3, 1, 2], "expression": "data.size()"}),
        ),
        {"text": "done"},
    ]
    await create_workflow(
        stubs, "pair", {"steps": [react_step(script, ["calculator", "json_query"])]}
    )
    run, events = await run_to_end(stubs, "pair")
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    assert story(events) == [
        ("LLM_CALL", ""),
        ("TOOL_CALLED", "calculator"),
        ("TOOL_RESULT", "calculator"),
        ("TOOL_CALLED", "json_query"),
        ("TOOL_RESULT", "json_query"),
        ("STEP_PROGRESS", "turn 1: 2 tool calls"),
        ("LLM_CALL", ""),
        ("STEP_SUCCEEDED", ""),
    ]
    progress = of_type(events, E.RUN_EVENT_TYPE_STEP_PROGRESS)
    assert progress[0].progress == pytest.approx(1 / 8)  # default max_turns
    assert [t["result"] for t in output_of(run)["trace"]] == [4, 3]


async def test_without_a_script_the_model_answers_at_once(stubs: Stubs) -> None:
    await create_workflow(stubs, "plain", {"steps": [react_step(None, ["calculator"])]})
    run, events = await run_to_end(stubs, "plain")
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    output = output_of(run)
    assert output["turns"] == 1 and output["trace"] == []
    assert "What is 6 times 7" in output["answer"]
    assert not of_type(events, E.RUN_EVENT_TYPE_TOOL_CALLED)


# max_turns


async def test_exceeding_max_turns_fails_the_step_for_good(stubs: Stubs) -> None:
    loop = calls(("calculator", {"expression": "1 + 1"}))
    step = react_step([loop, loop, loop], ["calculator"], max_turns=2)
    step["retry"] = [{"errorEquals": ["podium.All"], "interval": "0.01s", "maxAttempts": 3}]
    await create_workflow(stubs, "loop", {"steps": [step]})
    run, events = await run_to_end(stubs, "loop")
    assert run.state == R.RUN_STATE_FAILED
    step_run = run.steps[0]
    assert step_run.state == R.STEP_STATE_FAILED
    assert step_run.failure.type == "podium.MaxTurns"
    assert "2 turns" in step_run.failure.message
    assert not step_run.failure.retryable
    assert len(step_run.attempts) == 1  # not retryable
    assert len(of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)) == 2
    assert len(of_type(events, E.RUN_EVENT_TYPE_TOOL_RESULT)) == 2
    progress = of_type(events, E.RUN_EVENT_TYPE_STEP_PROGRESS)
    assert [(p.progress, p.message) for p in progress] == [
        (0.5, "turn 1: 1 tool call"),
        (1.0, "turn 2: 1 tool call"),
    ]


# config checks


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"max_turns": 0}, "max_turns"),
        ({"max_turns": 51}, "max_turns"),
        ({"max_turns": 2.5}, "max_turns"),
        ({"max_turns": "3"}, "max_turns"),
        ({"provider": "nowhere"}, "provider"),
        ({"fallbacks": [{"provider": "nowhere", "model": "m"}]}, "fallbacks[0].provider"),
        ({"fallbacks": [{"provider": "simulated"}]}, "fallbacks[0]"),
        ({"prompt": "{{ input. }}"}, "prompt"),
        ({"system": 3}, "system"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": -1}, "temperature"),
        ({"options": "fast"}, "options"),
        ({"max_turn": 3}, "max_turn"),
    ],
)
async def test_a_bad_config_is_rejected(stubs: Stubs, config: dict[str, Any], field: str) -> None:
    step = react_step(None, ["calculator"], **config)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create_workflow(stubs, "bad-config", {"steps": [step]})
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = [f for f, _ in field_violations(error.value)]
    assert fields == [f"spec.steps[0].config.{field}"]
