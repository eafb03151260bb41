"""JSON Schemas of workflow data: a run's input (checked by StartRun, each
violation named by its JSON pointer, nothing stored), a run's and a step's
output (podium.InvalidOutput), agents' published schemas (ListAgents) and
step configs checked against them (CreateWorkflow)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import grpc
import pytest

from podium.testing import (
    Stubs,
    create_workflow,
    echo_step,
    error_info,
    field_violations,
    plain,
    plugins_with,
    run_to_end,
    serving,
    start_run,
    step_of,
    workers_serve,
)
from podium.v1 import control_service_pb2, execution_service_pb2, run_pb2
from podium.worker import Worker

ORDER_SCHEMA = {
    "type": "object",
    "required": ["customer", "items"],
    "properties": {
        "customer": {
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"type": "string"}},
        },
        "items": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["sku", "qty"],
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
            },
        },
    },
}


async def _runs(stubs: Stubs) -> int:
    response = await stubs.executions.ListRuns(execution_service_pb2.ListRunsRequest())
    return len(response.runs)


async def test_start_run_names_each_input_violation_by_json_pointer(tmp_path: Path) -> None:
    async with serving(str(tmp_path / "podium.db")) as (_, stubs):
        await create_workflow(
            stubs, "orders", {"inputSchema": ORDER_SCHEMA, "steps": [echo_step("a")]}
        )
        bad = {"customer": {"id": 7}, "items": [{"sku": "A", "qty": 0}, {"qty": 2.5}]}
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await start_run(stubs, "orders", bad)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(caught.value).reason == "INPUT_SCHEMA_VIOLATED"
        violations = dict(field_violations(caught.value))
        assert set(violations) == {
            "/input/customer/id",
            "/input/items/0/qty",
            "/input/items/1",
            "/input/items/1/qty",
        }
        assert "is not of type 'string'" in violations["/input/customer/id"]
        assert "less than the minimum of 1" in violations["/input/items/0/qty"]
        assert "'sku' is a required property" in violations["/input/items/1"]
        assert await _runs(stubs) == 0  # nothing stored

        run, _ = await run_to_end(
            stubs, "orders", {"customer": {"id": "c1"}, "items": [{"sku": "A", "qty": 3}]}
        )
        assert run.state == run_pb2.RUN_STATE_SUCCEEDED


async def test_a_key_with_a_slash_is_escaped_in_the_pointer(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"a/b~c": {"type": "integer"}}}
    async with serving(str(tmp_path / "podium.db")) as (_, stubs):
        await create_workflow(stubs, "w", {"inputSchema": schema, "steps": [echo_step("a")]})
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await start_run(stubs, "w", {"a/b~c": "x"})
        assert [field for field, _ in field_violations(caught.value)] == ["/input/a~1b~0c"]


async def test_a_step_output_violating_its_schema_fails_with_invalid_output(
    tmp_path: Path,
) -> None:
    spec = {
        "steps": [
            echo_step(
                "a",
                input={"n": "input.n"},
                outputSchema={"type": "object", "properties": {"n": {"type": "integer"}}},
                retry=[{"errorEquals": ["podium.All"], "maxAttempts": 3}],
            )
        ]
    }
    async with serving(str(tmp_path / "podium.db")) as (_, stubs):
        await create_workflow(stubs, "w", spec)
        good, _ = await run_to_end(stubs, "w", {"n": 4})
        assert good.state == run_pb2.RUN_STATE_SUCCEEDED
        bad, _ = await run_to_end(stubs, "w", {"n": "four"})
    assert bad.state == run_pb2.RUN_STATE_FAILED
    step = step_of(bad, "a")
    assert step.failure.type == "podium.InvalidOutput"
    assert "at /n: 'four' is not of type 'integer'" in step.failure.message
    assert len(step.attempts) == 1  # never retried: the same input gives the same output


async def test_each_item_of_a_fan_out_is_checked(tmp_path: Path) -> None:
    spec = {
        "steps": [
            echo_step(
                "each",
                input={"v": "item"},
                forEach={"items": "input.values"},
                outputSchema={"type": "object", "properties": {"v": {"type": "integer"}}},
            )
        ]
    }
    async with serving(str(tmp_path / "podium.db")) as (_, stubs):
        await create_workflow(stubs, "w", spec)
        run, _ = await run_to_end(stubs, "w", {"values": [1, 2, "three"]})
    assert run.state == run_pb2.RUN_STATE_FAILED
    failure = step_of(run, "each").failure
    assert failure.type == "podium.TooManyFailedItems"
    assert "1 of 3 items failed" in failure.message
    assert "at /v: 'three' is not of type 'integer'" in failure.message


async def test_the_run_output_is_checked_against_the_output_schema(tmp_path: Path) -> None:
    spec = {
        "steps": [echo_step("a", input={"total": "input.total"})],
        "output": {"total": "steps.a.output.total"},
        "outputSchema": {"type": "object", "properties": {"total": {"type": "number"}}},
    }
    async with serving(str(tmp_path / "podium.db")) as (_, stubs):
        await create_workflow(stubs, "w", spec)
        good, _ = await run_to_end(stubs, "w", {"total": 12})
        bad, _ = await run_to_end(stubs, "w", {"total": "12"})
    assert good.state == run_pb2.RUN_STATE_SUCCEEDED
    assert plain(good.output) == {"total": 12}
    assert bad.state == run_pb2.RUN_STATE_FAILED
    assert bad.failure.type == "podium.InvalidOutput"
    assert "output_schema" in bad.failure.message


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"inputSchema": {"type": "objekt"}, "steps": [echo_step("a")]}, "spec.input_schema"),
        ({"outputSchema": {"minimum": "x"}, "steps": [echo_step("a")]}, "spec.output_schema"),
        (
            {"steps": [echo_step("a", outputSchema={"required": "x"})]},
            "spec.steps[0].output_schema",
        ),
    ],
)
async def test_a_schema_that_is_no_json_schema_is_refused(
    tmp_path: Path, spec: dict[str, Any], field: str
) -> None:
    async with serving(str(tmp_path / "podium.db")) as (_, stubs):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await create_workflow(stubs, "w", spec)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(caught.value)
    assert [f for f, _ in violations] == [field]
    assert "not a JSON Schema" in violations[0][1]


class Tally:
    """An agent that publishes its schemas (an in-process plugin)."""

    name = "tally"
    description = "Counts its input's items."
    version = "1"
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"unit": {"enum": ["each", "box"]}, "scale": {"type": "integer"}},
    }
    input_schema: ClassVar[dict[str, Any]] = {"type": "object", "required": ["items"]}
    output_schema: ClassVar[dict[str, Any]] = {"type": "object", "required": ["count"]}

    async def run(self, ctx: Any) -> Any:
        if ctx.input.get("broken"):
            return {"counted": len(ctx.input["items"])}
        return {"count": len(ctx.input["items"])}


async def test_list_agents_returns_in_process_agents_schemas(tmp_path: Path) -> None:
    async with serving(str(tmp_path / "podium.db"), plugins=plugins_with([Tally()])) as (_, s):
        response = await s.control.ListAgents(control_service_pb2.ListAgentsRequest())
    agents = {agent.name: agent for agent in response.agents}
    tally = agents["tally"]
    assert plain(tally.config_schema) == Tally.config_schema
    assert plain(tally.input_schema) == Tally.input_schema
    assert plain(tally.output_schema) == Tally.output_schema
    # The builtin agents publish theirs too.
    llm = plain(agents["llm"].config_schema)
    assert llm["additionalProperties"] is False
    assert "response_format" in llm["properties"]


async def test_create_workflow_checks_config_against_the_agent_schema(tmp_path: Path) -> None:
    step = {"id": "t", "agent": "tally", "config": {"unit": "crate", "scale": 1.5, "colour": 1}}
    async with serving(str(tmp_path / "podium.db"), plugins=plugins_with([Tally()])) as (_, s):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await create_workflow(s, "w", {"steps": [step]})
    violations = dict(field_violations(caught.value))
    assert set(violations) == {
        "spec.steps[0].config",
        "spec.steps[0].config.unit",
        "spec.steps[0].config.scale",
    }
    assert "'colour' was unexpected" in violations["spec.steps[0].config"]
    assert "is not one of ['each', 'box']" in violations["spec.steps[0].config.unit"]


async def test_builtin_agent_config_keeps_its_precise_messages(tmp_path: Path) -> None:
    step = {"id": "l", "agent": "llm", "config": {"max_tokens": -1, "promt": "x"}}
    async with serving(str(tmp_path / "podium.db")) as (_, stubs):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await create_workflow(stubs, "w", {"steps": [step]})
    violations = field_violations(caught.value)
    # One report per fault: the agent's own words, not the schema's as well.
    assert sorted(f for f, _ in violations) == [
        "spec.steps[0].config.max_tokens",
        "spec.steps[0].config.promt",
    ]


async def test_in_process_agent_input_and_output_schemas_hold(tmp_path: Path) -> None:
    spec = {"steps": [{"id": "t", "agent": "tally", "input": {"items": "input.items"}}]}
    broken = {
        "steps": [
            {"id": "t", "agent": "tally", "input": {"items": "input.items", "broken": "true"}}
        ]
    }
    no_items = {"steps": [{"id": "t", "agent": "tally", "input": {"things": "input.items"}}]}
    async with serving(str(tmp_path / "podium.db"), plugins=plugins_with([Tally()])) as (_, s):
        await create_workflow(s, "ok", spec)
        await create_workflow(s, "broken", broken)
        await create_workflow(s, "no-items", no_items)
        ok, _ = await run_to_end(s, "ok", {"items": [1, 2]})
        out, _ = await run_to_end(s, "broken", {"items": [1, 2]})
        inp, _ = await run_to_end(s, "no-items", {"items": [1, 2]})
    assert plain(step_of(ok, "t").output) == {"count": 2}
    assert step_of(out, "t").failure.type == "podium.InvalidOutput"
    assert "'count' is a required property" in step_of(out, "t").failure.message
    assert step_of(inp, "t").failure.type == "podium.InvalidInput"
    assert "input_schema" in step_of(inp, "t").failure.message


class RemoteTally(Tally):
    """The same agent, served by a Python worker (its schemas go in the worker's registration)."""

    name = "remote_tally"


async def test_a_remote_workers_config_schema_checks_create_workflow(tmp_path: Path) -> None:
    async with serving(str(tmp_path / "podium.db")) as (server, stubs):
        worker = Worker(f"127.0.0.1:{server.port}", [RemoteTally()])
        task = asyncio.create_task(worker.run())
        try:
            await workers_serve(stubs, "remote_tally")
            listed = await stubs.control.ListAgents(control_service_pb2.ListAgentsRequest())
            [remote] = [a for a in listed.agents if a.name == "remote_tally"]
            assert not remote.in_process
            assert plain(remote.config_schema) == Tally.config_schema
            step = {"id": "t", "agent": "remote_tally", "config": {"unit": "crate"}}
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await create_workflow(stubs, "w", {"steps": [step]})
            ok = {"id": "t", "agent": "remote_tally", "config": {"unit": "box"}}
            await create_workflow(stubs, "w", {"steps": [ok]})
        finally:
            worker.stop()
            await task
    violations = field_violations(caught.value)
    assert [field for field, _ in violations] == ["spec.steps[0].config.unit"]
    assert "is not one of ['each', 'box']" in violations[0][1]
