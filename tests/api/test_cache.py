"""The step result cache through a real server: a hit within the TTL for the
same agent, config and input (nothing runs), a miss otherwise, kept across a
restart."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from podium.core.clock import ManualClock
from podium.testing import (
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    get_run,
    make_spec,
    of_type,
    plain,
    run_to_end,
    serving,
    step_of,
    struct,
)
from podium.v1 import event_pb2, execution_service_pb2, run_pb2, workflow_service_pb2

E = event_pb2
R = run_pb2


def cached_step(ttl: str = "60s", **config: Any) -> dict[str, Any]:
    step = echo_step("work", input={"q": "input.q"}, cache={"ttl": ttl})
    if config:
        step["config"] = config
    return {"steps": [step]}


async def cached_run(stubs: Stubs, workflow: str, q: Any) -> tuple[Any, list[Any], Any]:
    run, events = await run_to_end(stubs, workflow, {"q": q})
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    return run, events, step_of(run, "work")


def hits(events: Sequence[event_pb2.RunEvent]) -> list[event_pb2.RunEvent]:
    return of_type(events, E.RUN_EVENT_TYPE_STEP_CACHE_HIT)


async def test_the_same_input_within_the_ttl_is_a_cache_hit(db_path: str) -> None:
    clock = ManualClock()
    async with serving(db_path, clock=clock) as (_, stubs):
        await create_workflow(stubs, "cached", cached_step())
        _, first_events, first = await cached_run(stubs, "cached", "otters")
        assert not hits(first_events)
        assert len(first.attempts) == 1

        clock.advance(59)
        _, events, second = await cached_run(stubs, "cached", "otters")
        assert len(hits(events)) == 1
        hit = hits(events)[0]
        assert hit.step_id == "work"
        assert plain(hit.output) == {"q": "otters"}
        assert not second.attempts  # nothing ran
        assert not of_type(events, E.RUN_EVENT_TYPE_STEP_STARTED)
        assert plain(second.output) == plain(first.output) == {"q": "otters"}
        assert plain(second.input) == {"q": "otters"}
        assert second.state == R.STEP_STATE_SUCCEEDED
        succeeded = of_type(events, E.RUN_EVENT_TYPE_STEP_SUCCEEDED)
        assert [plain(e.output) for e in succeeded] == [{"q": "otters"}]


async def test_a_different_input_is_a_miss(db_path: str) -> None:
    async with serving(db_path, clock=ManualClock()) as (_, stubs):
        await create_workflow(stubs, "cached", cached_step())
        await cached_run(stubs, "cached", "otters")
        _, events, other = await cached_run(stubs, "cached", "beavers")
        assert not hits(events)
        assert len(other.attempts) == 1
        assert plain(other.output) == {"q": "beavers"}
        # Both are cached now, each under its own input.
        _, again, _ = await cached_run(stubs, "cached", "otters")
        assert len(hits(again)) == 1


async def test_after_the_ttl_it_is_a_miss(db_path: str) -> None:
    clock = ManualClock()
    async with serving(db_path, clock=clock) as (_, stubs):
        await create_workflow(stubs, "cached", cached_step())
        await cached_run(stubs, "cached", "otters")
        clock.advance(61)
        _, events, work = await cached_run(stubs, "cached", "otters")
        assert not hits(events)
        assert len(work.attempts) == 1
        # That run cached its result afresh.
        _, again, _ = await cached_run(stubs, "cached", "otters")
        assert len(hits(again)) == 1


async def test_a_different_config_is_a_miss(db_path: str) -> None:
    async with serving(db_path, clock=ManualClock()) as (_, stubs):
        await create_workflow(stubs, "cached", cached_step())
        await create_workflow(stubs, "cached-slow", cached_step(delay_ms=1))
        await cached_run(stubs, "cached", "otters")
        _, events, work = await cached_run(stubs, "cached-slow", "otters")
        assert not hits(events)
        assert len(work.attempts) == 1


async def test_the_cache_survives_a_restart(db_path: str) -> None:
    clock = ManualClock()
    async with serving(db_path, clock=clock) as (_, stubs):
        await create_workflow(stubs, "cached", cached_step())
        await cached_run(stubs, "cached", "otters")
    async with serving(db_path, clock=ManualClock(clock.now() + 30)) as (_, stubs):
        _, events, work = await cached_run(stubs, "cached", "otters")
        assert len(hits(events)) == 1
        assert not work.attempts


async def test_without_a_cache_nothing_is_reused(stubs: Stubs) -> None:
    await create_workflow(stubs, "uncached", {"steps": [echo_step("work", input={"q": "input.q"})]})
    for _ in range(2):
        _, events, work = await cached_run(stubs, "uncached", "otters")
        assert not hits(events)
        assert len(work.attempts) == 1


async def test_get_run_of_a_cache_hit(db_path: str) -> None:
    async with serving(db_path, clock=ManualClock()) as (_, stubs):
        await create_workflow(stubs, "cached", cached_step())
        await cached_run(stubs, "cached", "otters")
        run, _, _ = await cached_run(stubs, "cached", "otters")
        view = await get_run(stubs, run.name)
        assert plain(view.output) == {"work": {"q": "otters"}}
        assert not step_of(view, "work").attempts


async def test_another_tenants_cached_output_is_a_miss(db_path: str) -> None:
    # Without authentication the caller is an admin: x-podium-tenant picks the tenant.
    acme = (("x-podium-tenant", "acme"),)
    async with serving(db_path, clock=ManualClock()) as (_, stubs):
        await create_workflow(stubs, "cached", cached_step())
        await cached_run(stubs, "cached", "otters")
        await stubs.workflows.CreateWorkflow(
            workflow_service_pb2.CreateWorkflowRequest(
                workflow_id="cached", spec=make_spec(cached_step())
            ),
            metadata=acme,
        )
        started = await stubs.executions.StartRun(
            execution_service_pb2.StartRunRequest(
                workflow="workflows/cached", input=struct({"q": "otters"})
            ),
            metadata=acme,
        )
        events = await collect_events(stubs, started.run.name, metadata=acme)
        assert not hits(events)
        assert of_type(events, E.RUN_EVENT_TYPE_STEP_STARTED)
        # The default tenant's entry is still its own.
        _, again, _ = await cached_run(stubs, "cached", "otters")
        assert len(hits(again)) == 1
