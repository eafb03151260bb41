"""Every step ends in one recorded final state, with a failure type and
message, whatever its data or its agent does; a run is SUCCEEDED only with
its output computed and committed; and what GetRun says is what the store
says (each case is read again from a server restarted on the same file).

The data cases are ordinary workflow data that once broke a run: cel-cpp
raising (its iteration budget) in a step input, a condition or the output
mapping, numbers JSON cannot hold, waits no timestamp can show, an agent's
huge integer or huge output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from podium.core.limits import DEFAULTS, LIMIT_EXCEEDED
from podium.plugins.api import StepContext
from podium.testing import (
    collect_events,
    create_workflow,
    get_run,
    plain,
    plugins_with,
    serving,
    start_run,
    step_of,
)
from podium.v1 import run_pb2

R = run_pb2

# Over cel-cpp's iteration budget (about 10,000), which makes it raise a
# RuntimeError. `all` raises as `map(x, x)` does, in milliseconds (`map`
# copies its partial result per item: seconds before it gets there).
BIG = list(range(20_000))
OVER_BUDGET = "input.big.all(x, true)"
# The largest google.protobuf.Duration: 10,000 years.
LARGEST_DURATION = "315576000000s"


class Returns:
    """An agent returning what `make` makes (made per call: a 100 MB value
    must not live as long as the test module)."""

    description = "returns a made value"
    version = "1"

    def __init__(self, name: str, make: Callable[[], Any]) -> None:
        self.name = name
        self.make = make

    async def run(self, ctx: StepContext) -> Any:
        return self.make()


class VersionFailsOnceRegistered:
    """A hostile agent whose `version` raises once it is registered: the step
    cache reads it outside any attempt, so it faults the step's own code."""

    name = "bad_version"
    description = "its version raises at run time"

    def __init__(self) -> None:
        self.registered = False

    @property
    def version(self) -> str:
        if self.registered:
            raise RuntimeError("no version today")
        return "1"

    async def run(self, ctx: StepContext) -> Any:
        return {}


AGENTS = [
    Returns("huge_int", lambda: {"n": 10**400}),
    Returns("big_int", lambda: {"n": 2**53 + 1}),
    Returns("huge_output", lambda: {"text": "x" * 100_000_000}),
    Returns("small_output", lambda: {"text": "x" * 1000}),
    Returns("medium_output", lambda: {"text": "x" * 3000}),
    Returns("deep_output", lambda: nested(200)),
    Returns("deepest_allowed", lambda: nested(DEFAULTS.max_output_depth)),
]


def nested(levels: int) -> Any:
    """Lists and maps in turn, `levels` deep."""
    value: Any = "bottom"
    for level in range(levels):
        value = {"down": value} if level % 2 else [value]
    return value


async def outcome(
    db_path: str, spec: dict[str, Any], run_input: dict[str, Any] | None = None, **options: Any
) -> tuple[run_pb2.Run, run_pb2.Run]:
    """Runs `spec` to its end; returns what GetRun says, then what a server
    restarted on the same file says (the store's record)."""
    bad_version = VersionFailsOnceRegistered()
    plugins = plugins_with([*AGENTS, bad_version])  # type: ignore[list-item]
    bad_version.registered = True
    async with serving(db_path, plugins=plugins, **options) as (_, stubs):
        await create_workflow(stubs, "w", spec)
        run = await start_run(stubs, "w", run_input)
        await collect_events(stubs, run.name)
        live = await get_run(stubs, run.name)
    async with serving(db_path, plugins=plugins, **options) as (_, stubs):
        stored = await get_run(stubs, run.name)
    assert _states(live) == _states(stored), "GetRun differs from the stored run"
    assert live.failure == stored.failure
    return live, stored


def _states(run: run_pb2.Run) -> list[tuple[str, int, str, str]]:
    return [(run.name, run.state, run.failure.type, "")] + [
        (s.step_id, s.state, s.failure.type, s.failure.message) for s in run.steps
    ]


def assert_step_failed(run: run_pb2.Run, step_id: str, failure_type: str, *needles: str) -> None:
    assert run.state == R.RUN_STATE_FAILED, R.RunState.Name(run.state)
    step = step_of(run, step_id)
    assert step.state == R.STEP_STATE_FAILED, R.StepState.Name(step.state)
    assert step.failure.type == failure_type, step.failure
    assert step.failure.message
    for needle in needles:
        assert needle in step.failure.message, step.failure.message
    assert run.failure.type == failure_type


def assert_output_failed(run: run_pb2.Run, *needles: str) -> None:
    assert run.state == R.RUN_STATE_FAILED, R.RunState.Name(run.state)
    assert run.failure.type == "podium.InvalidOutput", run.failure
    assert all(s.state == R.STEP_STATE_SUCCEEDED for s in run.steps)
    assert not run.HasField("output") or not run.output.fields
    for needle in needles:
        assert needle in run.failure.message, run.failure.message


# -- CEL raising, or giving what JSON cannot hold -------------------------------------------


async def test_cel_runtime_error_in_a_step_input_fails_the_step(db_path: str) -> None:
    spec = {"steps": [{"id": "a", "agent": "echo", "input": {"all": OVER_BUDGET}}]}
    run, _ = await outcome(db_path, spec, {"big": BIG})
    assert_step_failed(run, "a", "podium.InvalidInput", "Iteration budget")


async def test_cel_runtime_error_in_a_condition_fails_the_step(db_path: str) -> None:
    spec = {"steps": [{"id": "a", "agent": "echo", "when": OVER_BUDGET}]}
    run, _ = await outcome(db_path, spec, {"big": BIG})
    assert_step_failed(run, "a", "podium.InvalidInput", "Iteration budget")


async def test_cel_runtime_error_in_the_output_mapping_fails_the_run(db_path: str) -> None:
    spec = {"steps": [{"id": "a", "agent": "echo"}], "output": {"all": OVER_BUDGET}}
    run, _ = await outcome(db_path, spec, {"big": BIG})
    assert_output_failed(run, "Iteration budget")


async def test_cel_runtime_error_in_an_approval_prompt_fails_the_step(db_path: str) -> None:
    spec = {"steps": [{"id": "a", "approval": {"prompt": f"{{{{ {OVER_BUDGET} }}}}"}}]}
    run, _ = await outcome(db_path, spec, {"big": BIG})
    assert_step_failed(run, "a", "podium.InvalidInput", "Iteration budget")


async def test_infinity_in_a_step_input_fails_the_step(db_path: str) -> None:
    spec = {"steps": [{"id": "a", "agent": "echo", "input": {"x": "2.0 / 0.0"}}]}
    run, _ = await outcome(db_path, spec)
    assert_step_failed(run, "a", "podium.InvalidInput", "inf")


async def test_nan_in_the_run_output_fails_the_run(db_path: str) -> None:
    spec = {"steps": [{"id": "a", "agent": "echo"}], "output": {"x": "double('nan')"}}
    run, _ = await outcome(db_path, spec)
    assert_output_failed(run, "nan")


# -- waits no timestamp can show --------------------------------------------------------------


@pytest.mark.parametrize(
    "wait",
    [
        {"timeExpression": "1e300"},
        {"timeExpression": "double('nan')"},
        {"timeExpression": "input.when"},
        {"duration": LARGEST_DURATION},
    ],
    ids=["1e300", "nan", "nan-from-input", "largest-duration"],
)
async def test_a_wait_beyond_any_timestamp_fails_the_step(
    db_path: str, wait: dict[str, Any]
) -> None:
    spec = {"steps": [{"id": "w", "wait": wait}]}
    run, _ = await outcome(db_path, spec, {"when": 1e300})
    assert_step_failed(run, "w", "podium.InvalidInput")


# -- agents' outputs ---------------------------------------------------------------------------


async def test_an_integer_beyond_a_double_travels_as_its_decimal_string(db_path: str) -> None:
    spec = {"steps": [{"id": "a", "agent": "huge_int"}, {"id": "b", "agent": "big_int"}]}
    run, stored = await outcome(db_path, spec)
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED
    assert plain(step_of(stored, "a").output) == {"n": str(10**400)}
    assert plain(step_of(stored, "b").output) == {"n": "9007199254740993"}


async def test_an_output_over_the_size_limit_fails_the_attempt_naming_the_limit(
    db_path: str,
) -> None:
    spec = {"steps": [{"id": "a", "agent": "huge_output"}]}
    run, _ = await outcome(db_path, spec)
    assert_step_failed(run, "a", "podium.InvalidOutput", "max_output_bytes", str(1024 * 1024))


async def test_the_output_size_limit_is_a_server_setting(db_path: str) -> None:
    spec = {"steps": [{"id": "a", "agent": "small_output"}]}
    run, _ = await outcome(db_path, spec, max_output_bytes=500)
    assert_step_failed(run, "a", "podium.InvalidOutput", "over the limit of 500 bytes")


async def test_podium_max_output_bytes_sets_the_limit(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODIUM_MAX_OUTPUT_BYTES", "500")
    spec = {"steps": [{"id": "a", "agent": "small_output"}]}
    run, _ = await outcome(db_path, spec)
    assert_step_failed(run, "a", "podium.InvalidOutput", "over the limit of 500 bytes")


async def test_a_bad_podium_max_output_bytes_stops_the_start(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODIUM_MAX_OUTPUT_BYTES", "lots")
    with pytest.raises(ValueError, match="PODIUM_MAX_OUTPUT_BYTES must be an integer from 1 to"):
        async with serving(db_path):
            pass


# -- combined outputs: a fan-out's and a run's --------------------------------------------------

# Each item's or step's output is within it, the whole is not.
COMBINED_LIMIT = 5000


async def test_a_fan_out_whose_combined_output_is_too_large_fails_naming_the_limit(
    db_path: str,
) -> None:
    # Ten outputs of about 1 KB: each within 5,000 bytes, their list twice over it.
    spec = {"steps": [{"id": "each", "agent": "small_output", "forEach": {"items": "input.items"}}]}
    run, stored = await outcome(
        db_path, spec, {"items": list(range(10))}, max_output_bytes=COMBINED_LIMIT
    )
    assert_step_failed(
        run, "each", LIMIT_EXCEEDED, "combined output", "max_output_bytes", str(COMBINED_LIMIT)
    )
    assert step_of(stored, "each").items_succeeded == 10
    assert not step_of(stored, "each").HasField("output")


async def test_a_fan_out_within_the_limit_keeps_its_combined_output(db_path: str) -> None:
    spec = {"steps": [{"id": "each", "agent": "small_output", "forEach": {"items": "input.items"}}]}
    _run, stored = await outcome(
        db_path, spec, {"items": list(range(4))}, max_output_bytes=COMBINED_LIMIT
    )
    assert stored.state == R.RUN_STATE_SUCCEEDED
    assert len(step_of(stored, "each").output.list_value.values) == 4


async def test_a_run_whose_output_is_too_large_fails_naming_the_limit(db_path: str) -> None:
    # Two final steps of about 3 KB each: the run's output holds both.
    spec = {"steps": [{"id": "a", "agent": "medium_output"}, {"id": "b", "agent": "medium_output"}]}
    _run, stored = await outcome(db_path, spec, max_output_bytes=COMBINED_LIMIT)
    assert stored.state == R.RUN_STATE_FAILED
    assert stored.failure.type == LIMIT_EXCEEDED, stored.failure
    assert "the run's output is too large" in stored.failure.message
    assert "max_output_bytes" in stored.failure.message
    assert all(s.state == R.STEP_STATE_SUCCEEDED for s in stored.steps)
    assert not stored.output.fields


async def test_a_run_whose_output_mapping_is_too_large_fails_naming_the_limit(
    db_path: str,
) -> None:
    spec = {
        "steps": [{"id": "a", "agent": "medium_output"}],
        "output": {"twice": "steps.a.output.text + steps.a.output.text"},
    }
    _run, stored = await outcome(db_path, spec, max_output_bytes=COMBINED_LIMIT)
    assert stored.state == R.RUN_STATE_FAILED
    assert stored.failure.type == LIMIT_EXCEEDED, stored.failure
    assert "max_output_bytes" in stored.failure.message


async def test_a_deeply_nested_agent_output_fails_the_attempt_and_reads_still_work(
    db_path: str,
) -> None:
    # 200 levels: protobuf parses 100 message levels, three per JSON level.
    spec = {"steps": [{"id": "a", "agent": "deep_output"}]}
    run, stored = await outcome(db_path, spec)
    assert_step_failed(run, "a", "podium.InvalidOutput", "max_output_depth", "24 levels")
    assert not step_of(stored, "a").attempts[0].failure.retryable


async def test_outputs_at_the_depth_limit_are_readable_in_a_fan_out_and_the_run(
    db_path: str,
) -> None:
    # The deepest output allowed, in a fan-out's list and in the run's output
    # (two levels more): GetRun and WatchRun still encode it, live and stored.
    spec = {
        "steps": [{"id": "each", "agent": "deepest_allowed", "forEach": {"items": "input.items"}}]
    }
    _run, stored = await outcome(db_path, spec, {"items": [1, 2]})
    assert stored.state == R.RUN_STATE_SUCCEEDED, stored.failure
    assert len(step_of(stored, "each").output.list_value.values) == 2
    assert "each" in stored.output.fields


# -- the safety net -----------------------------------------------------------------------------


async def test_a_fault_in_the_steps_own_code_fails_it_never_cancels_it(db_path: str) -> None:
    spec = {"steps": [{"id": "a", "agent": "bad_version", "cache": {"ttl": "60s"}}]}
    run, _ = await outcome(db_path, spec)
    assert_step_failed(run, "a", "podium.Internal", "no version today")
