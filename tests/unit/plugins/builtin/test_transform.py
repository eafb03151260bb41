"""The builtin transform agent: a CEL expression, or a mapping of them, over
the step input; bad expressions reported by field."""

from __future__ import annotations

import pytest

from podium.plugins import Registry
from podium.plugins.api import (
    AgentError,
    config_problems,
)
from podium.plugins.builtin import (
    TransformAgent,
)
from podium.testing import FakeStepContext


async def test_transform_evaluates_a_cel_expression() -> None:
    ctx = FakeStepContext(
        input={"items": [1, 2, 3]}, config={"output": "input.items.map(x, x * 2)"}
    )
    assert await TransformAgent().run(ctx) == [2, 4, 6]


async def test_transform_evaluates_a_mapping_of_expressions() -> None:
    config = {"output": {"total": "input.a + input.b", "big": "input.a > 10"}}
    # 2.0 as a google.protobuf.Struct would deliver it: CEL still adds it to an int.
    assert await TransformAgent().run(FakeStepContext(input={"a": 2.0, "b": 3}, config=config)) == {
        "total": 5,
        "big": False,
    }


def test_transform_reports_bad_expressions_by_field(catalog: Registry) -> None:
    problems = config_problems(
        TransformAgent(), {"output": {"ok": "input", "bad": "input +"}}, catalog
    )
    assert [field for field, _ in problems] == ["output.bad"]
    assert [f for f, _ in config_problems(TransformAgent(), {"output": "nope"}, catalog)] == [
        "output"
    ]
    assert [f for f, _ in config_problems(TransformAgent(), {}, catalog)] == ["output"]


async def test_transform_fails_for_good_when_evaluation_fails() -> None:
    with pytest.raises(AgentError) as error:
        await TransformAgent().run(FakeStepContext(input={}, config={"output": "input.missing"}))
    assert error.value.code == "podium.InvalidInput"
    assert not error.value.retryable
