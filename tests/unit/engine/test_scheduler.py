"""The pure scheduling decisions: trigger rules over dependency counters."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from podium.core.states import StepState
from podium.engine.scheduler import DependencyCounters, decide

FINAL = [StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED, StepState.CANCELLED]
ANY_STATE = [StepState.PENDING, StepState.RUNNING, StepState.WAITING, *FINAL]


def counts(states: list[StepState]) -> tuple[int, int]:
    return sum(s.is_final for s in states), states.count(StepState.SUCCEEDED)


@given(st.lists(st.sampled_from(ANY_STATE), max_size=6))
def test_all_succeeded_launches_only_after_every_dependency_succeeded(
    states: list[StepState],
) -> None:
    deps = [f"d{i}" for i in range(len(states))]
    by_id = dict(zip(deps, states, strict=True))
    ended, succeeded = counts(states)
    decision = decide("ALL_SUCCEEDED", deps, ended, succeeded, by_id.__getitem__)
    if any(s.is_final and s != StepState.SUCCEEDED for s in states):
        assert decision.action == "skip" and "dependency" in decision.reason
    elif all(s == StepState.SUCCEEDED for s in states):
        assert decision.action == "launch"
    else:
        assert decision.action == "wait"


@given(st.lists(st.sampled_from(ANY_STATE), max_size=6))
def test_all_done_waits_for_every_dependency_then_launches(states: list[StepState]) -> None:
    deps = [f"d{i}" for i in range(len(states))]
    ended, succeeded = counts(states)
    decision = decide(
        "ALL_DONE", deps, ended, succeeded, dict(zip(deps, states, strict=True)).__getitem__
    )
    assert decision.action == ("launch" if all(s.is_final for s in states) else "wait")


@given(st.lists(st.sampled_from(ANY_STATE), min_size=1, max_size=6))
def test_any_succeeded_skips_only_when_all_ended_and_none_succeeded(
    states: list[StepState],
) -> None:
    deps = [f"d{i}" for i in range(len(states))]
    ended, succeeded = counts(states)
    decision = decide(
        "ANY_SUCCEEDED", deps, ended, succeeded, dict(zip(deps, states, strict=True)).__getitem__
    )
    if not all(s.is_final for s in states):
        assert decision.action == "wait"
    elif StepState.SUCCEEDED in states:
        assert decision.action == "launch"
    else:
        assert decision == decision.__class__("skip", "no dependency succeeded")


def test_a_skip_names_the_dependency_that_just_ended() -> None:
    states = {"a": StepState.FAILED, "b": StepState.CANCELLED}
    assert decide("ALL_SUCCEEDED", ["a", "b"], 2, 0, states.__getitem__, "b").reason == (
        "dependency 'b' cancelled"
    )
    assert decide("ALL_SUCCEEDED", ["a", "b"], 2, 0, states.__getitem__).reason == (
        "dependency 'a' failed"
    )


def test_counters_start_from_the_states_and_count_each_end_once() -> None:
    dependencies = {"a": [], "b": [], "join": ["a", "b"]}
    dependents = {"a": ["join"], "b": ["join"], "join": []}
    states = {"a": StepState.SUCCEEDED, "b": StepState.PENDING, "join": StepState.PENDING}
    counters = DependencyCounters(dependencies, dependents, states)
    assert (counters.ended["join"], counters.succeeded["join"]) == (1, 1)
    assert list(counters.dependents("b")) == ["join"]
    counters.count_end("join", succeeded=False)
    assert (counters.ended["join"], counters.succeeded["join"]) == (2, 1)
