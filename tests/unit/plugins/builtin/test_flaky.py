"""The builtin flaky agent: fails its first attempts, or with a reproducible
probability, with the chosen error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from podium.plugins import Registry
from podium.plugins.api import (
    AgentError,
    config_problems,
)
from podium.plugins.builtin import (
    FlakyAgent,
)
from podium.testing import FakeStepContext


async def test_flaky_fails_exactly_the_first_attempts_with_the_chosen_code() -> None:
    config = {"fail_attempts": 2, "error": "Boom", "message": "kaput"}
    for attempt in (1, 2):
        with pytest.raises(AgentError) as error:
            await FlakyAgent().run(FakeStepContext(input="in", config=config, attempt=attempt))
        assert error.value.code == "Boom"
        assert str(error.value) == "kaput"
        assert error.value.retryable
    assert await FlakyAgent().run(FakeStepContext(input="in", config=config, attempt=3)) == "in"


async def test_flaky_fails_the_first_attempt_by_default() -> None:
    with pytest.raises(AgentError) as error:
        await FlakyAgent().run(FakeStepContext(attempt=1))
    assert error.value.code == "FlakyError"
    assert await FlakyAgent().run(FakeStepContext(input=7, attempt=2)) == 7


async def _flaky_outcomes(config: Mapping[str, Any], run_id: str, attempts: int) -> list[bool]:
    outcomes = []
    for attempt in range(1, attempts + 1):
        try:
            await FlakyAgent().run(FakeStepContext(config=config, attempt=attempt, run_id=run_id))
            outcomes.append(True)
        except AgentError:
            outcomes.append(False)
    return outcomes


async def test_flaky_probability_is_reproducible_and_roughly_right() -> None:
    config = {"fail_probability": 0.3}
    first = await _flaky_outcomes(config, "run-a", 400)
    assert first == await _flaky_outcomes(config, "run-a", 400)
    assert first != await _flaky_outcomes(config, "run-b", 400)
    assert 0.2 < first.count(False) / len(first) < 0.4
    assert all(await _flaky_outcomes({"fail_probability": 0}, "run-a", 50))
    assert not any(await _flaky_outcomes({"fail_probability": 1}, "run-a", 50))


def test_flaky_checks_its_config(catalog: Registry) -> None:
    bad = {"fail_attempts": -1, "fail_probability": 1.5, "error": "", "retryable": "no"}
    problems = config_problems(FlakyAgent(), bad, catalog)
    assert sorted(field for field, _ in problems) == [
        "error",
        "fail_attempts",
        "fail_probability",
        "retryable",
    ]
    good = {"fail_attempts": 2.0, "fail_probability": 0.5, "error": "E", "delay_ms": 1}
    assert config_problems(FlakyAgent(), good, catalog) == []
