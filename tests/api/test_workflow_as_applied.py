"""GetWorkflow and ListWorkflows return a definition exactly as CreateWorkflow was given it:
equal messages and equal bytes, explicit defaults (FAILURE_POLICY_FAIL,
TRIGGER_RULE_ALL_SUCCEEDED, an interval of 1s) and the nanoseconds of times and durations
included; also after a restart, when the definition is read from the database."""

from __future__ import annotations

import itertools

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podium.testing import Stubs, create_workflow, echo_step, make_spec, serving
from podium.v1 import common_pb2, workflow_pb2, workflow_service_pb2

W = workflow_pb2
_ids = itertools.count()

identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
# A fixed alphabet, non-ASCII included (hypothesis builds its full one slowly).
ALPHABET = "az AZ09_-.é€😀\n"
texts = st.text(ALPHABET, max_size=12)
# Durations and instants with arbitrary nanoseconds: a float of seconds would change them.
durations = st.builds(
    duration_pb2.Duration,
    seconds=st.integers(1, 10**6),
    nanos=st.integers(0, 999_999_999),
)
instants = st.builds(
    timestamp_pb2.Timestamp,
    seconds=st.integers(0, 4_000_000_000),
    nanos=st.integers(0, 999_999_999),
)
delays = st.floats(min_value=0, max_value=10**6, allow_nan=False)


def struct(values: dict[str, float]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


@st.composite
def retriers(draw: st.DrawFn) -> W.Retrier:
    interval = draw(st.none() | durations)
    longer = duration_pb2.Duration(
        seconds=(interval.seconds if interval else 1) + draw(st.integers(0, 100)),
        # Never shorter than the interval (same seconds, fewer nanos was drawn before).
        nanos=draw(st.integers(interval.nanos if interval else 0, 999_999_999)),
    )
    return W.Retrier(
        error_equals=draw(st.sampled_from([["podium.Timeout", "ValueError"], ["ValueError"]])),
        interval=interval,
        backoff_rate=draw(st.sampled_from([0.0, 1.0, 1.5, 2.0])),  # 0: the default, 2.0
        max_interval=draw(st.sampled_from([None, longer])),
        max_attempts=draw(st.integers(0, 5)),  # 0: the default, 3
        jitter=draw(st.sampled_from(list(W.Jitter.values()))),
    )


@st.composite
def agent_steps(draw: st.DrawFn, step_id: str, earlier: list[str]) -> W.Step:
    return W.Step(
        id=step_id,
        agent="echo",
        description=draw(texts),
        input=draw(st.dictionaries(identifiers, st.sampled_from(["'x'", "1.5", "input"]))),
        depends_on=draw(st.lists(st.sampled_from(earlier), unique=True)) if earlier else [],
        # echo knows one setting; a Struct number is a double, fractions included.
        config=struct(draw(st.sampled_from([{}, {"delay_ms": draw(delays)}]))),
        retry=draw(st.lists(retriers(), max_size=2)),
        attempt_timeout=draw(st.none() | durations),
        timeout=draw(st.none() | durations),
        # Every value, the ones that mean the default included: they must come back as given.
        on_failure=draw(st.sampled_from(list(W.FailurePolicy.values()))),
        trigger_rule=draw(st.sampled_from(list(W.TriggerRule.values()))),
        when=draw(st.sampled_from(["", "true", "input != null"])),
        fail_fast=draw(st.booleans()),
    )


@st.composite
def wait_steps(draw: st.DrawFn, step_id: str) -> W.Step:
    kind = draw(st.sampled_from(["duration", "time"]))
    wait = W.Wait(duration=draw(durations)) if kind == "duration" else W.Wait(time=draw(instants))
    return W.Step(id=step_id, wait=wait, on_failure=W.FAILURE_POLICY_FAIL)


@st.composite
def definitions(draw: st.DrawFn) -> W.WorkflowSpec:
    ids = draw(st.lists(identifiers, min_size=1, max_size=5, unique=True))
    steps: list[W.Step] = []
    for i, step_id in enumerate(ids):
        if draw(st.integers(0, 3)) == 0:
            steps.append(draw(wait_steps(step_id)))
        else:
            steps.append(draw(agent_steps(step_id, ids[:i])))
    cost = draw(st.none() | st.integers(0, 10**9))
    return W.WorkflowSpec(
        description=draw(texts),
        steps=steps,
        output=draw(st.dictionaries(identifiers, st.sampled_from(["input", "'done'"]))),
        max_concurrency=draw(st.integers(0, 8)),
        labels=draw(st.dictionaries(identifiers, texts, max_size=2)),
        retry=draw(st.lists(retriers(), max_size=2)),
        timeout=draw(st.none() | durations),
        max_cost=None
        if cost is None
        else common_pb2.Money(currency_code="USD", nanos=cost % 10**9),
    )


async def read_back(stubs: Stubs, workflow_id: str) -> list[W.WorkflowSpec]:
    """The definition as GetWorkflow (latest, and by version) and ListWorkflows return it."""
    name = f"workflows/{workflow_id}"
    latest = await stubs.workflows.GetWorkflow(workflow_service_pb2.GetWorkflowRequest(name=name))
    pinned = await stubs.workflows.GetWorkflow(
        workflow_service_pb2.GetWorkflowRequest(name=name, version=latest.workflow.version)
    )
    listed = await stubs.workflows.ListWorkflows(
        workflow_service_pb2.ListWorkflowsRequest(page_size=1000)
    )
    from_list = [w.spec for w in listed.workflows if w.name == name]
    return [latest.workflow.spec, pinned.workflow.spec, *from_list]


def assert_same(applied: W.WorkflowSpec, returned: list[W.WorkflowSpec]) -> None:
    assert len(returned) == 3
    for spec in returned:
        assert spec == applied
        assert spec.SerializeToString(deterministic=True) == applied.SerializeToString(
            deterministic=True
        )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(applied=definitions())
async def test_a_definition_comes_back_exactly_as_applied(
    stubs: Stubs, applied: W.WorkflowSpec
) -> None:
    workflow_id = f"applied-{next(_ids)}"
    created = await stubs.workflows.CreateWorkflow(
        workflow_service_pb2.CreateWorkflowRequest(workflow_id=workflow_id, spec=applied)
    )
    assert created.workflow.spec == applied
    assert_same(applied, await read_back(stubs, workflow_id))


# The cases issue 10 names: defaults spelled out, and a time with nanoseconds.
EXPLICIT = {
    "steps": [
        echo_step("a", onFailure="FAILURE_POLICY_FAIL", triggerRule="TRIGGER_RULE_ALL_SUCCEEDED"),
        {"id": "pause", "wait": {"time": "2031-05-06T07:08:09.123456789Z"}, "dependsOn": ["a"]},
    ]
}


async def test_explicit_defaults_and_nanoseconds_survive_a_restart(db_path: str) -> None:
    applied = make_spec(EXPLICIT)
    async with serving(db_path) as (_, stubs):
        await create_workflow(stubs, "explicit", EXPLICIT)
        assert_same(applied, await read_back(stubs, "explicit"))
    async with serving(db_path) as (_, stubs):
        returned = await read_back(stubs, "explicit")
    assert_same(applied, returned)
    assert returned[0].steps[0].on_failure == W.FAILURE_POLICY_FAIL
    assert returned[0].steps[0].trigger_rule == W.TRIGGER_RULE_ALL_SUCCEEDED
    assert returned[0].steps[1].wait.time.nanos == 123_456_789


async def test_left_out_defaults_stay_left_out(stubs: Stubs) -> None:
    # The reverse of spelling them out: nothing is filled in on the way back either.
    await create_workflow(stubs, "implicit", {"steps": [echo_step("a")]})
    returned = await read_back(stubs, "implicit")
    step = returned[0].steps[0]
    assert step.on_failure == W.FAILURE_POLICY_UNSPECIFIED
    assert step.trigger_rule == W.TRIGGER_RULE_UNSPECIFIED
    assert not step.HasField("config")
