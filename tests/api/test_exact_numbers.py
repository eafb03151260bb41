"""Exact numbers through every layer: integers stay integers (input -> CEL ->
agent -> output -> events -> API; 4 never comes back 4.0, and beyond 2^53
they travel as decimal strings), and decimal strings stay exact through CEL's
decimal functions (examples/revenue.yaml)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podium.client import to_python
from podium.client.definitions import load_definition
from podium.testing import Stubs, create_workflow, plain, run_to_end, serving, step_of
from podium.v1 import event_pb2, run_pb2

REPO = Path(__file__).resolve().parents[2]
MAX_EXACT = 2**53

# Every layer: CEL (input mapping and transform), an agent (echo), the run's
# output mapping, the events and GetRun.
LAYERS = {
    "steps": [
        {
            "id": "cel",
            "agent": "transform",
            "input": {"n": "input.n", "amount": "input.amount"},
            "config": {
                "output": {
                    "n": "input.n",
                    "n_plus_zero": "input.n + 0",
                    "is_int": "type(input.n) == int",
                    "amount": "string(decimal(input.amount) + decimal('0'))",
                    "amount_times_three": "decimal(input.amount) * decimal(3)",
                }
            },
        },
        {
            "id": "agent",
            "agent": "echo",
            "dependsOn": ["cel"],
            "input": {"from_cel": "steps.cel.output", "n": "input.n"},
        },
    ],
    "output": {
        "n": "steps.agent.output.n",
        "doubled": "steps.agent.output.from_cel.n_plus_zero * 2",
        "is_int": "steps.agent.output.from_cel.is_int",
        "amount": "steps.agent.output.from_cel.amount",
        "tripled": "steps.agent.output.from_cel.amount_times_three",
    },
}


@pytest.fixture
async def layered(tmp_path: Path) -> AsyncIterator[Stubs]:
    async with serving(str(tmp_path / "podium.db")) as (_, stubs):
        await create_workflow(stubs, "layers", LAYERS)
        yield stubs


def _kinds(value: Any) -> Any:
    """The value with each number replaced by its Python type's name."""
    if isinstance(value, dict):
        return {key: _kinds(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_kinds(item) for item in value]
    return type(value).__name__


decimal_strings = st.decimals(
    min_value=Decimal("-1e12"), max_value=Decimal("1e12"), allow_nan=False, places=4
).map(lambda d: format(d, "f"))


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(n=st.integers(-(MAX_EXACT // 2), MAX_EXACT // 2), amount=decimal_strings)
async def test_integers_and_decimals_survive_every_layer(
    layered: Stubs, n: int, amount: str
) -> None:
    run, events = await run_to_end(layered, "layers", {"n": n, "amount": amount})
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED, run.failure.message
    output = plain(run.output)
    exact = Decimal(amount)
    assert output == {
        "n": n,
        "doubled": 2 * n,
        "is_int": True,
        "amount": output["amount"],
        "tripled": output["tripled"],
    }
    assert Decimal(output["amount"]) == exact
    assert Decimal(output["tripled"]) == exact * 3
    assert type(output["n"]) is int and type(output["doubled"]) is int
    # The agent saw an int, and the events carry the same numbers.
    cel_output = plain(step_of(run, "cel").output)
    assert cel_output["n"] == n and type(cel_output["n"]) is int
    finished = [
        to_python(event.output)
        for event in events
        if event.type == event_pb2.RUN_EVENT_TYPE_STEP_SUCCEEDED and event.step_id == "agent"
    ]
    assert finished and finished[0]["n"] == n and type(finished[0]["n"]) is int


async def test_integers_beyond_2_53_are_decimal_strings_end_to_end(layered: Stubs) -> None:
    big = str(2**53 + 1)
    spec = {
        "steps": [
            {
                "id": "big",
                "agent": "transform",
                "input": {"n": "input.n"},
                "config": {"output": "int(input.n) * 4"},
            }
        ]
    }
    await create_workflow(layered, "big", spec)
    run, _ = await run_to_end(layered, "big", {"n": big})
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED
    assert plain(step_of(run, "big").output) == str((2**53 + 1) * 4)


async def test_the_revenue_example_is_exact_to_the_cent(tmp_path: Path) -> None:
    request = load_definition(REPO / "examples" / "revenue.yaml")
    lines_input = json.loads((REPO / "examples" / "revenue-input.json").read_text())
    async with serving(str(tmp_path / "podium.db")) as (_, stubs):
        await stubs.workflows.CreateWorkflow(request)
        run, _ = await run_to_end(stubs, "revenue", lines_input)
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED, run.failure.message
    output = plain(run.output)
    net = sum(Decimal(line["unit_price"]) * line["quantity"] for line in lines_input["lines"])
    vat = (net * Decimal(lines_input["vat_rate"])).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    assert (output["net"], output["vat"], output["gross"]) == ("1476.08", "280.46", "1756.54")
    assert Decimal(output["net"]) == net and Decimal(output["vat"]) == vat
    assert output["line_count"] == 4 and type(output["line_count"]) is int
    assert [line["quantity"] for line in output["lines"]] == [3, 7, 12, 1]
    assert output["lines"][0]["net"] == "0.30"  # not 0.30000000000000004


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("decimal('0.1') + decimal('0.2') == decimal('0.3')", True),
        ("string(round(decimal('2.675'), 2, 'HALF_EVEN'))", "2.68"),
        ("string(round(decimal('2.665'), 2, 'HALF_EVEN'))", "2.66"),
        ("string(round(decimal('2.665'), 2, 'HALF_UP'))", "2.67"),
        ("string(round(decimal('-2.665'), 2, 'FLOOR'))", "-2.67"),
        ("string(round(decimal('1234.5'), -2, 'HALF_EVEN'))", "1200"),
        ("fixed(decimal('0.1') * decimal(3), 2)", "0.30"),
        ("fixed(decimal('2.675'), 2)", "2.68"),
        ("round(decimal('2.5'), 0)", "2"),
        ("string(decimal('1') / decimal('8'))", "0.125"),
        ("decimal('10.50') > decimal('10.5')", False),
        ("decimal('10.50') == decimal('10.5')", True),
        ("string(-decimal('0.01') - decimal('0.02'))", "-0.03"),
        ("string(decimal(7) * decimal('0.1'))", "0.7"),
        ("double(decimal('0.25'))", 0.25),
    ],
)
async def test_decimal_functions(layered: Stubs, expression: str, expected: Any) -> None:
    spec = {"steps": [{"id": "x", "agent": "transform", "config": {"output": expression}}]}
    workflow_id = f"dec-{abs(hash(expression)) % 10**8}"
    await create_workflow(layered, workflow_id, spec)
    run, _ = await run_to_end(layered, workflow_id)
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED, run.failure.message
    assert plain(step_of(run, "x").output) == expected


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("decimal('ten')", "not a decimal number"),
        ("decimal('1') / decimal('0')", "division by zero"),
        ("round(decimal('1.5'), 0, 'BANKERS')", "is not one of HALF_EVEN"),
        ("decimal('NaN')", "not a finite number"),
    ],
)
async def test_bad_decimals_fail_the_step_with_invalid_input(
    layered: Stubs, expression: str, words: str
) -> None:
    spec = {"steps": [{"id": "x", "agent": "transform", "config": {"output": expression}}]}
    workflow_id = f"bad-{abs(hash(expression)) % 10**8}"
    await create_workflow(layered, workflow_id, spec)
    run, _ = await run_to_end(layered, workflow_id)
    failure = step_of(run, "x").failure
    assert run.state == run_pb2.RUN_STATE_FAILED
    assert words in failure.message
