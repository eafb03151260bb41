"""A run input larger than OFF_LOOP_BYTES: converted, checked, hashed and
encoded in a worker thread, and answered from the request's own Struct. The
run reads the same everywhere (StartRun's reply, GetRun while it runs and
once stored, the database row, its steps' expressions), and bad input is
named as exactly as on the event loop."""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2

from podium.core.jsonvalues import OFF_LOOP_BYTES, compact_json
from podium.core.limits import Limits
from podium.testing import (
    HoldAgent,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    eventually,
    field_violations,
    get_run,
    plugins_with,
    run_to_end,
    serving,
    start_run,
    step_of,
)
from podium.v1 import execution_service_pb2, run_pb2

# Small maps and a few scalar kinds, about six times OFF_LOOP_BYTES of JSON in
# fewer items than a fan-out may have (max_fan_out_items).
ITEMS = 8_000


def large_input() -> dict[str, Any]:
    items: list[Any] = [{"k": i, "half": i / 2, "s": "é" * 24} for i in range(ITEMS)]
    items[7] = None
    items[8] = [True, False, 2.5, "x"]
    return {"items": items, "nested": {"deep": [[{"a": 1}]]}}


def as_struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def stored_input(db_path: str, run_name: str) -> str:
    with sqlite3.connect(db_path) as conn:
        [(text,)] = conn.execute(
            "SELECT input FROM runs WHERE run_id = ?", (run_name.rsplit("/", 1)[1],)
        ).fetchall()
    assert isinstance(text, str)
    return text


async def test_a_large_input_reads_the_same_in_the_reply_the_run_the_row_and_the_steps(
    db_path: str,
) -> None:
    hold = HoldAgent()
    spec = {
        "steps": [
            echo_step("count", input={"n": "size(input.items)", "half": "input.items[3].half"}),
            {"id": "after", "agent": "hold", "dependsOn": ["count"]},
        ]
    }
    value = large_input()
    request = as_struct(value)
    assert request.ByteSize() > OFF_LOOP_BYTES
    async with serving(db_path, plugins=plugins_with([hold])) as (_, stubs):
        await create_workflow(stubs, "big", spec)
        started = await start_run(stubs, "big", value)
        await eventually(lambda: "after" in hold.held)
        running = await get_run(stubs, started.name)  # the engine's records
        hold.release()
        await collect_events(stubs, started.name)
        ended = await get_run(stubs, started.name)  # read back from the store
    assert started.input == request
    assert running.input == request
    assert ended.input == request
    assert ended.state == run_pb2.RUN_STATE_SUCCEEDED
    count = step_of(ended, "count")
    assert json_format.MessageToDict(count.output) == {"n": ITEMS, "half": 1.5}
    # Integral numbers stored as integers, the text as every run's is stored.
    text = stored_input(db_path, started.name)
    assert json.loads(text) == json.loads(json.dumps(value))
    assert text == compact_json(json.loads(text))
    assert '"k":5' in text and '"half":2.5' in text
    assert '"half":1' in text and '"half":1.0' not in text


async def test_a_repeated_request_id_with_a_large_input_gets_the_same_run(stubs: Stubs) -> None:
    await create_workflow(stubs, "big", {"steps": [echo_step("a", input={"n": "1"})]})
    value = large_input()
    first = await start_run(stubs, "big", value, request_id="once")
    again = await start_run(stubs, "big", value, request_id="once")
    assert again.name == first.name
    assert again.input == first.input == as_struct(value)
    changed = large_input()
    changed["items"][0] = "other"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await start_run(stubs, "big", changed, request_id="once")
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_a_non_finite_number_deep_in_a_large_input_is_named_by_its_path(
    stubs: Stubs,
) -> None:
    await create_workflow(stubs, "big", {"steps": [echo_step("a")]})
    request = as_struct(large_input())
    request.fields["items"].list_value.values[ITEMS - 2].struct_value.fields[
        "half"
    ].number_value = math.inf
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.executions.StartRun(
            execution_service_pb2.StartRunRequest(workflow="workflows/big", input=request)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [(field, description)] = field_violations(caught.value)
    assert field == f"input.items[{ITEMS - 2}].half"
    assert "finite" in description
    listed = await stubs.executions.ListRuns(execution_service_pb2.ListRunsRequest())
    assert list(listed.runs) == []


async def test_a_large_input_over_max_input_bytes_is_refused_naming_the_limit(
    db_path: str,
) -> None:
    async with serving(db_path, limits=Limits(max_input_bytes=3 * OFF_LOOP_BYTES)) as (_, stubs):
        await create_workflow(stubs, "big", {"steps": [echo_step("a")]})
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await start_run(stubs, "big", large_input())
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        [(field, description)] = field_violations(caught.value)
        assert field == "input" and "max_input_bytes" in description
        listed = await stubs.executions.ListRuns(execution_service_pb2.ListRunsRequest())
        assert list(listed.runs) == []


async def test_a_large_input_survives_a_restart_unchanged(db_path: str) -> None:
    hold = HoldAgent()
    spec = {"steps": [{"id": "wait", "agent": "hold"}, echo_step("n", "wait", input={"n": "1"})]}
    value = large_input()
    async with serving(db_path, plugins=plugins_with([hold])) as (server, stubs):
        await create_workflow(stubs, "big", spec)
        started = await start_run(stubs, "big", value)
        await eventually(lambda: "wait" in hold.held)
        await server.stop(0.5)
    text = stored_input(db_path, started.name)
    resumed_hold = HoldAgent()
    async with serving(db_path, plugins=plugins_with([resumed_hold])) as (_, stubs):
        await eventually(lambda: "wait" in resumed_hold.held)
        resumed_hold.release()
        await collect_events(stubs, started.name)
        ended = await get_run(stubs, started.name)
    assert ended.state == run_pb2.RUN_STATE_SUCCEEDED
    assert ended.input == as_struct(value)
    # Saved again at the end from the text read back, not re-encoded differently.
    assert stored_input(db_path, started.name) == text


# Steps reading, fanning out over and returning large values: their inputs
# are evaluated, their items listed and their outputs checked in worker
# threads (step_runner._off_loop, _checked_output), with the same results
# and failures as on the event loop.


async def test_steps_read_fan_out_over_and_return_a_large_input(stubs: Stubs) -> None:
    spec = {
        "steps": [
            echo_step("copy", input={"items": "input.items"}),
            echo_step(
                "each",
                forEach={"items": "[input.items[0], input.items[1], input.items[2]]"},
                input={"k": "item.k"},
            ),
            echo_step(
                "all", "copy", forEach={"items": "steps.copy.output.items"}, input={"i": "index"}
            ),
            echo_step("after", "copy", input={"n": "size(steps.copy.output.items)"}),
        ]
    }
    await create_workflow(stubs, "big", spec)
    value = large_input()
    run, _ = await run_to_end(stubs, "big", value)
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED, run.failure
    copied = json_format.MessageToDict(step_of(run, "copy").output)
    assert copied == json.loads(json.dumps({"items": value["items"]}))
    each: Any = json_format.MessageToDict(step_of(run, "each").output)  # a list: a Value
    assert each == [{"k": 0}, {"k": 1}, {"k": 2}]
    assert step_of(run, "all").items_total == ITEMS
    assert json_format.MessageToDict(step_of(run, "after").output) == {"n": ITEMS}


async def test_a_failing_expression_over_a_large_input_fails_its_step_with_its_error(
    stubs: Stubs,
) -> None:
    await create_workflow(
        stubs, "big", {"steps": [echo_step("bad", input={"v": "input.items[0].missing"})]}
    )
    run, _ = await run_to_end(stubs, "big", large_input())
    assert run.state == run_pb2.RUN_STATE_FAILED
    failure = step_of(run, "bad").failure
    assert failure.type == "podium.InvalidInput"
    assert "missing" in failure.message


async def test_a_large_output_over_max_output_bytes_fails_naming_the_limit(db_path: str) -> None:
    async with serving(db_path, limits=Limits(max_output_bytes=3 * OFF_LOOP_BYTES)) as (_, stubs):
        await create_workflow(
            stubs, "big", {"steps": [echo_step("copy", input={"items": "input.items"})]}
        )
        run, _ = await run_to_end(stubs, "big", large_input())
    # The input is within max_input_bytes (1 MiB); echoed, it is over max_output_bytes.
    assert run.state == run_pb2.RUN_STATE_FAILED
    failure = step_of(run, "copy").failure
    assert failure.type == "podium.InvalidOutput"
    assert "max_output_bytes" in failure.message


async def test_a_run_output_of_large_step_outputs_is_stored_and_read_whole(db_path: str) -> None:
    # The run's output (its final steps' outputs) is written with a text made
    # of theirs, already encoded: it must read back as the same value.
    spec = {
        "steps": [
            echo_step("a", input={"items": "input.items"}),
            echo_step("b", input={"nested": "input.nested", "n": "size(input.items)"}),
            echo_step("c", input={"first": "input.items[0]"}),
        ]
    }
    value = large_input()
    async with serving(db_path) as (_, stubs):
        await create_workflow(stubs, "big", spec)
        run, _ = await run_to_end(stubs, "big", value)
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED, run.failure
    expected = json.loads(
        json.dumps(
            {
                "a": {"items": value["items"]},
                "b": {"nested": value["nested"], "n": ITEMS},
                "c": {"first": value["items"][0]},
            }
        )
    )
    assert json_format.MessageToDict(run.output) == expected
    with sqlite3.connect(db_path) as conn:
        [(text,)] = conn.execute("SELECT output FROM runs").fetchall()
    assert json.loads(text) == json.loads(json.dumps(expected))
    assert text == compact_json(json.loads(text))
