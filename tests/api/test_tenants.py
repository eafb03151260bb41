"""Tenant isolation through a real server with authentication on: two tenants
with tokens make random workflows (the same ids too) and runs (the same request
ids too); no RPC, list, watch or spend query of one ever reveals the other's
resources, another tenant's run or workflow is NOT_FOUND, and governance of one
never consumes the other's budget. An admin acts on a tenant explicitly with
`x-podium-tenant`; nobody else may."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from podium.core.clock import ManualClock
from podium.governance.policy import Policy
from podium.identity.principal import Role
from podium.server.security import SecurityConfig
from podium.testing import (
    InProcessServer,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    error_info,
    field_violations,
    money_nanos,
    of_type,
    plain,
    run_to_end,
    serving,
    workers_serve,
)
from podium.testing.identity import new_token, stubs_for
from podium.v1 import (
    control_service_pb2,
    event_pb2,
    execution_service_pb2,
    identity_service_pb2,
    progress_service_pb2,
    run_pb2,
    workflow_service_pb2,
)
from podium.worker import Worker

C = control_service_pb2
ids = identity_service_pb2
X = execution_service_pb2
W = workflow_service_pb2
R = run_pb2
AUTH = SecurityConfig(auth=True)
WORKFLOW_IDS = ("etl", "ingest", "report")
# A tenant's token: workflows and runs (developer), reads of governance (operator).
TENANT_ROLES = (Role.DEVELOPER, Role.OPERATOR, Role.APPROVER)
_tenants = itertools.count()


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    return error.value


async def not_found(call: Any) -> None:
    error = await refused(call)
    assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()


@dataclass
class Tenant:
    name: str
    stubs: Stubs
    workflows: set[str] = field(default_factory=set)
    runs: set[str] = field(default_factory=set)
    seen: list[event_pb2.RunEvent] = field(default_factory=list)


@contextlib.asynccontextmanager
async def tenant(served: InProcessServer, name: str) -> AsyncIterator[Tenant]:
    token = await new_token(served.server, *TENANT_ROLES, tenant=name)
    async with stubs_for(served.address, token) as stubs:
        yield Tenant(name, stubs)


async def watch_everything(who: Tenant) -> None:
    """Every live event WatchRuns gives the tenant, until cancelled."""
    stream = who.stubs.progress.WatchRuns(progress_service_pb2.WatchRunsRequest())
    async for response in stream:
        who.seen.extend(response.events)


def spec(owner: str) -> dict[str, Any]:
    return {"labels": {"owner": owner}, "steps": [echo_step("s")]}


@dataclass(frozen=True)
class Action:
    tenant: int  # 0 or 1
    workflow: str
    runs: int
    request_id: str  # "" or a key both tenants may use


actions = st.lists(
    st.builds(
        Action,
        tenant=st.integers(0, 1),
        workflow=st.sampled_from(WORKFLOW_IDS),
        runs=st.integers(0, 2),
        request_id=st.sampled_from(["", "", "same"]),
    ),
    min_size=1,
    max_size=6,
)


@pytest.fixture
async def secured(db_path: str) -> AsyncIterator[InProcessServer]:
    async with serving(db_path, security=AUTH) as served:
        yield served


async def apply(who: Tenant, action: Action) -> None:
    await create_workflow(who.stubs, action.workflow, spec(who.name))
    who.workflows.add(action.workflow)
    for _ in range(action.runs):
        request_id = f"{action.workflow}-{action.request_id}" if action.request_id else ""
        started = await who.stubs.executions.StartRun(
            X.StartRunRequest(workflow=f"workflows/{action.workflow}", request_id=request_id)
        )
        assert started.run.labels["owner"] == who.name
        who.runs.add(started.run.name)


async def check_separate(me: Tenant, other: Tenant) -> None:
    listed = await me.stubs.workflows.ListWorkflows(W.ListWorkflowsRequest(page_size=100))
    assert {w.name.removeprefix("workflows/") for w in listed.workflows} == me.workflows
    for workflow_id in WORKFLOW_IDS:
        name = f"workflows/{workflow_id}"
        if workflow_id in me.workflows:
            got = await me.stubs.workflows.GetWorkflow(W.GetWorkflowRequest(name=name))
            assert got.workflow.spec.labels["owner"] == me.name
        else:
            await not_found(me.stubs.workflows.GetWorkflow(W.GetWorkflowRequest(name=name)))
            await not_found(me.stubs.executions.StartRun(X.StartRunRequest(workflow=name)))
    runs = await me.stubs.executions.ListRuns(X.ListRunsRequest(page_size=1000))
    assert {r.name for r in runs.runs} == me.runs
    assert all(r.labels["owner"] == me.name for r in runs.runs)
    for workflow_id in WORKFLOW_IDS:
        filtered = await me.stubs.executions.ListRuns(
            X.ListRunsRequest(workflow=f"workflows/{workflow_id}", page_size=1000)
        )
        assert {r.name for r in filtered.runs} <= me.runs
    for run in other.runs:
        await not_found(me.stubs.executions.GetRun(X.GetRunRequest(name=run)))
        await not_found(me.stubs.executions.CancelRun(X.CancelRunRequest(name=run)))
        await not_found(me.stubs.executions.DeleteRun(X.DeleteRunRequest(name=run)))
        await not_found(
            me.stubs.executions.ResolveApproval(
                X.ResolveApprovalRequest(
                    run=run, step_id="s", decision=event_pb2.APPROVAL_DECISION_APPROVE
                )
            )
        )
        await not_found(collect_events(me.stubs, run))
    spend = await me.stubs.control.GetSpend(C.GetSpendRequest())
    assert not spend.entries and money_nanos(spend.total) == 0


@settings(
    max_examples=12,
    deadline=None,
    # Each example serves real runs: shrinking a failure could take minutes.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(plan=actions)
async def test_no_tenant_ever_sees_another_tenants_resources(
    secured: InProcessServer, plan: list[Action]
) -> None:
    n = next(_tenants)
    async with tenant(secured, f"a{n}") as a, tenant(secured, f"b{n}") as b:
        both = (a, b)
        watchers = [asyncio.create_task(watch_everything(who)) for who in both]
        try:
            for action in plan:
                await apply(both[action.tenant], action)
            for who in both:
                for run in who.runs:
                    events = await collect_events(who.stubs, run)
                    assert events[-1].type == event_pb2.RUN_EVENT_TYPE_RUN_SUCCEEDED
            # A last run in each tenant: once its final event is watched, every
            # event before it has been delivered to the watchers too.
            for who in both:
                await apply(who, Action(0, "sentinel", 1, ""))
            for who in both:
                for run in who.runs:
                    await collect_events(who.stubs, run)
            async with asyncio.timeout(30):
                while not all(
                    any(
                        e.type == event_pb2.RUN_EVENT_TYPE_RUN_SUCCEEDED
                        and e.workflow == "workflows/sentinel"
                        for e in who.seen
                    )
                    for who in both
                ):
                    await asyncio.sleep(0.01)
        finally:
            for task in watchers:
                task.cancel()
            for task in watchers:
                with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                    await task
        for me, other in ((a, b), (b, a)):
            assert {e.run for e in me.seen} == me.runs
            await check_separate(me, other)
            # Deleting what only the other has is not found; then each deletes its own.
            for workflow_id in other.workflows - me.workflows:
                await not_found(
                    me.stubs.workflows.DeleteWorkflow(
                        W.DeleteWorkflowRequest(name=f"workflows/{workflow_id}")
                    )
                )
        for workflow_id in a.workflows & b.workflows:
            # The same id in both tenants: deleting one leaves the other's.
            await a.stubs.workflows.DeleteWorkflow(
                W.DeleteWorkflowRequest(name=f"workflows/{workflow_id}")
            )
            got = await b.stubs.workflows.GetWorkflow(
                W.GetWorkflowRequest(name=f"workflows/{workflow_id}")
            )
            assert got.workflow.spec.labels["owner"] == b.name


# -- governance -------------------------------------------------------------------------


def _budget_policy() -> Policy:
    return Policy.model_validate(
        {
            "budgets": [
                {"name": "acme-cap", "scope": "tenant:acme", "limit": "1"},
                # Too small for any call: refuses every call of globex, whatever acme spends.
                {"name": "globex-cap", "scope": "tenant:globex", "limit": "0.0000000001"},
            ]
        }
    )


LLM_SPEC = {
    "steps": [
        {
            "id": "ask",
            "agent": "llm",
            "config": {"prompt": "Summarize the quarterly report", "max_tokens": 8},
        }
    ]
}


async def _run(stubs: Stubs, workflow: str) -> R.Run:
    started = await stubs.executions.StartRun(X.StartRunRequest(workflow=f"workflows/{workflow}"))
    await collect_events(stubs, started.run.name)
    got = await stubs.executions.GetRun(X.GetRunRequest(name=started.run.name))
    return got.run


async def _budgets(stubs: Stubs) -> dict[str, C.Budget]:
    listed = await stubs.control.ListBudgets(C.ListBudgetsRequest())
    return {b.name: b for b in listed.budgets}


async def test_one_tenants_calls_never_consume_another_tenants_budget(db_path: str) -> None:
    async with serving(db_path, security=AUTH, policy=_budget_policy()) as served:
        admin_token = await new_token(served.server, Role.ADMIN)
        async with (
            tenant(served, "acme") as acme,
            tenant(served, "globex") as globex,
            stubs_for(served.address, admin_token) as admin,
        ):
            for who in (acme, globex):
                await create_workflow(who.stubs, "ask", LLM_SPEC)
            charged = await _run(acme.stubs, "ask")
            assert charged.state == R.RUN_STATE_SUCCEEDED, charged.failure
            cost = money_nanos(charged.cost)
            assert cost > 0

            # acme's spend is acme's: globex sees none, its budget is untouched.
            acme_spend = await acme.stubs.control.GetSpend(C.GetSpendRequest())
            assert money_nanos(acme_spend.total) == cost
            tenant_scope = C.GetSpendRequest(scope_kind=C.SCOPE_KIND_TENANT, scope_value="acme")
            assert money_nanos((await acme.stubs.control.GetSpend(tenant_scope)).total) == cost
            globex_spend = await globex.stubs.control.GetSpend(C.GetSpendRequest())
            assert not globex_spend.entries and money_nanos(globex_spend.total) == 0
            assert not (await globex.stubs.control.GetSpend(tenant_scope)).entries
            # Each sees its own budget only; an admin sees both.
            mine = await _budgets(acme.stubs)
            assert list(mine) == ["acme-cap"] and money_nanos(mine["acme-cap"].spent) == cost
            theirs = await _budgets(globex.stubs)
            assert list(theirs) == ["globex-cap"]
            assert money_nanos(theirs["globex-cap"].spent) == 0
            assert set(await _budgets(admin)) == {"acme-cap", "globex-cap"}

            # globex's own budget refuses globex, independently of acme's room ...
            refused_run = await _run(globex.stubs, "ask")
            assert refused_run.state == R.RUN_STATE_FAILED
            assert refused_run.steps[0].failure.type == "podium.BudgetExceeded"
            assert money_nanos(refused_run.cost) == 0
            # ... and acme's next call is still served, charged to acme alone.
            again = await _run(acme.stubs, "ask")
            assert again.state == R.RUN_STATE_SUCCEEDED, again.failure
            after = await _budgets(acme.stubs)
            assert money_nanos(after["acme-cap"].spent) == cost + money_nanos(again.cost)
            assert money_nanos((await _budgets(globex.stubs))["globex-cap"].spent) == 0
            # The admin's own tenant (default) made no call.
            assert money_nanos((await admin.control.GetSpend(C.GetSpendRequest())).total) == 0


LARGE = "model:simulated/sim-large"


def _breaker_step(*, failing: bool, model: str = "sim-large") -> dict[str, Any]:
    """One call to `model`; failing, the simulated provider answers a server error.
    fail_fast: an open breaker fails the run at once instead of waiting out its cooldown."""
    config: dict[str, Any] = {"prompt": "Hello", "model": model, "max_tokens": 8}
    if failing:
        config["options"] = {"fail_with": "server_error", "fail_models": ["sim-large"]}
    return {"steps": [{"id": "ask", "agent": "llm", "fail_fast": True, "config": config}]}


async def _breakers(stubs: Stubs, *metadata: tuple[str, str]) -> dict[tuple[str, str], C.Breaker]:
    """The breakers calls have used (every configured provider's and model's are listed too,
    unused)."""
    listed = await stubs.control.ListBreakers(C.ListBreakersRequest(), metadata=metadata)
    return {(b.tenant, b.name): b for b in listed.breakers if b.calls}


async def test_one_tenants_failing_calls_open_only_its_own_breakers(db_path: str) -> None:
    rules = Policy.model_validate(
        {"breakers": {"overrides": {LARGE: {"failure_threshold": 1, "cooldown": 60}}}}
    )
    async with serving(db_path, security=AUTH, policy=rules, clock=ManualClock()) as served:
        admin_token = await new_token(served.server, Role.ADMIN)
        async with (
            tenant(served, "acme") as acme,
            tenant(served, "globex") as globex,
            stubs_for(served.address, admin_token) as admin,
        ):
            await create_workflow(acme.stubs, "ask", _breaker_step(failing=True))
            await create_workflow(globex.stubs, "ask", _breaker_step(failing=False))
            run, events = await run_to_end(acme.stubs, "ask")
            assert run.state == R.RUN_STATE_FAILED
            opened = of_type(events, event_pb2.RUN_EVENT_TYPE_CIRCUIT_OPENED)
            assert [e.breaker for e in opened] == [LARGE]

            # acme's open breaker refuses acme's next call at once ...
            run, _ = await run_to_end(acme.stubs, "ask")
            assert run.state == R.RUN_STATE_FAILED
            assert "circuit breaker" in run.failure.message
            # ... while globex's calls to the same provider and model flow.
            for _ in range(2):
                run, events = await run_to_end(globex.stubs, "ask")
                assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
                assert [e.model for e in of_type(events, event_pb2.RUN_EVENT_TYPE_LLM_CALL)] == [
                    "sim-large"
                ]
                assert not of_type(events, event_pb2.RUN_EVENT_TYPE_CIRCUIT_OPENED)

            # Each tenant lists its own breakers only; the admin sees both, by tenant.
            names = {"provider:simulated", LARGE, "agent:llm"}
            mine = await _breakers(acme.stubs)
            assert mine.keys() == {("acme", n) for n in names}
            assert mine["acme", LARGE].state == C.BREAKER_STATE_OPEN
            theirs = await _breakers(globex.stubs)
            assert theirs.keys() == {("globex", n) for n in names}
            assert theirs["globex", LARGE].state == C.BREAKER_STATE_CLOSED
            assert theirs["globex", LARGE].calls == 2
            every = await _breakers(admin)
            assert every.keys() == mine.keys() | theirs.keys()
            assert every["acme", LARGE].state == C.BREAKER_STATE_OPEN
            assert (await _breakers(admin, *_as("globex"))).keys() == theirs.keys()

            # In the admin's own tenant (default) the breaker is known but unused: resetting
            # it does nothing to acme's or globex's, and one nobody knows is not found.
            own = await admin.control.ResetBreaker(C.ResetBreakerRequest(name=LARGE))
            assert (own.breaker.tenant, own.breaker.calls) == ("default", 0)
            assert (await _breakers(acme.stubs))["acme", LARGE].state == C.BREAKER_STATE_OPEN
            await not_found(admin.control.ResetBreaker(C.ResetBreakerRequest(name="agent:nope")))
            # globex's reset resets globex's breaker, never acme's.
            reset = await globex.stubs.control.ResetBreaker(C.ResetBreakerRequest(name=LARGE))
            assert (reset.breaker.tenant, reset.breaker.calls) == ("globex", 0)
            assert (await _breakers(acme.stubs))["acme", LARGE].state == C.BREAKER_STATE_OPEN
            # A breaker only another tenant has is NOT_FOUND.
            await create_workflow(
                globex.stubs, "small", _breaker_step(failing=False, model="sim-small")
            )
            run, _ = await run_to_end(globex.stubs, "small")
            assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
            small = C.ResetBreakerRequest(name="model:simulated/sim-small")
            # acme's own sim-small breaker is unused (known, closed): resetting it leaves
            # globex's, which counted the call, alone.
            assert (await acme.stubs.control.ResetBreaker(small)).breaker.calls == 0
            assert (await _breakers(globex.stubs))["globex", "model:simulated/sim-small"].calls
            assert (await globex.stubs.control.ResetBreaker(small)).breaker.tenant == "globex"
            # The admin resets acme's with x-podium-tenant.
            reset = await admin.control.ResetBreaker(
                C.ResetBreakerRequest(name=LARGE), metadata=_as("acme")
            )
            assert (reset.breaker.tenant, reset.breaker.state) == ("acme", C.BREAKER_STATE_CLOSED)
            run, _ = await run_to_end(acme.stubs, "ask")
            assert "circuit breaker" not in run.failure.message


# -- an admin acting on a tenant ----------------------------------------------------------


def _as(tenant_name: str) -> tuple[tuple[str, str], ...]:
    return (("x-podium-tenant", tenant_name),)


async def test_an_admin_acts_on_another_tenant_only_when_it_says_so(db_path: str) -> None:
    async with serving(db_path, security=AUTH) as served:
        admin_token = await new_token(served.server, Role.ADMIN)
        async with (
            tenant(served, "acme") as acme,
            stubs_for(served.address, admin_token) as admin,
        ):
            await create_workflow(acme.stubs, "etl", spec("acme"))
            run = await _run(acme.stubs, "etl")

            # Without the metadata the admin is in its own tenant: acme's are not there.
            listed = await admin.workflows.ListWorkflows(W.ListWorkflowsRequest())
            assert not listed.workflows
            await not_found(admin.executions.GetRun(X.GetRunRequest(name=run.name)))

            # With it, the admin reads, starts and deletes in acme.
            acme_listed = await admin.workflows.ListWorkflows(
                W.ListWorkflowsRequest(), metadata=_as("acme")
            )
            assert [w.name for w in acme_listed.workflows] == ["workflows/etl"]
            got = await admin.executions.GetRun(
                X.GetRunRequest(name=run.name), metadata=_as("acme")
            )
            assert got.run.name == run.name
            started = await admin.executions.StartRun(
                X.StartRunRequest(workflow="workflows/etl"), metadata=_as("acme")
            )
            await admin.workflows.CreateWorkflow(
                W.CreateWorkflowRequest(
                    workflow_id="made-by-admin", spec=acme_listed.workflows[0].spec
                ),
                metadata=_as("acme"),
            )
            acme_runs = await acme.stubs.executions.ListRuns(X.ListRunsRequest())
            assert {r.name for r in acme_runs.runs} == {run.name, started.run.name}
            acme_workflows = await acme.stubs.workflows.ListWorkflows(W.ListWorkflowsRequest())
            assert {w.name for w in acme_workflows.workflows} == {
                "workflows/etl",
                "workflows/made-by-admin",
            }
            await collect_events(acme.stubs, started.run.name)
            await admin.executions.DeleteRun(
                X.DeleteRunRequest(name=run.name), metadata=_as("acme")
            )
            await not_found(acme.stubs.executions.GetRun(X.GetRunRequest(name=run.name)))

            # Tokens for another tenant are made by naming it.
            made = await admin.identity.CreateToken(
                ids.CreateTokenRequest(roles=[ids.ROLE_VIEWER], tenant="acme")
            )
            async with stubs_for(served.address, made.secret) as viewer:
                caller = await viewer.identity.GetCaller(ids.GetCallerRequest())
                assert caller.tenant == "acme"
                seen = await viewer.executions.ListRuns(X.ListRunsRequest())
                assert {r.name for r in seen.runs} == {started.run.name}

            # Anyone else naming a tenant is refused, its own included.
            for name in ("default", "acme"):
                denied = await refused(
                    acme.stubs.workflows.ListWorkflows(W.ListWorkflowsRequest(), metadata=_as(name))
                )
                assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
                assert error_info(denied).reason == "TENANT_OVERRIDE_DENIED"
            # A malformed tenant is invalid, naming the metadata key.
            bad = await refused(
                admin.workflows.ListWorkflows(W.ListWorkflowsRequest(), metadata=_as("a b"))
            )
            assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "x-podium-tenant" in {f for f, _ in field_violations(bad)}


async def test_without_authentication_everything_is_in_the_default_tenant(db_path: str) -> None:
    async with serving(db_path) as (_, stubs):
        await create_workflow(stubs, "etl", spec("default"))
        run = await _run(stubs, "etl")
        assert run.state == R.RUN_STATE_SUCCEEDED
        # The unauthenticated caller is an admin: it may look into another tenant, empty here.
        other = await stubs.executions.ListRuns(X.ListRunsRequest(), metadata=_as("acme"))
        assert not other.runs
        mine = await stubs.executions.ListRuns(X.ListRunsRequest())
        assert [r.name for r in mine.runs] == [run.name]
        assert money_nanos((await stubs.control.GetSpend(C.GetSpendRequest())).total) == 0


# -- workers ------------------------------------------------------------------------------


class Signed:
    """Answers with the tenant its worker was started for."""

    name = "signed"
    description = "Says whose worker ran it."
    version = "1"

    def __init__(self, owner: str) -> None:
        self.owner = owner

    async def run(self, ctx: Any) -> Any:
        return {"by": self.owner}


async def test_a_workers_session_takes_only_its_tenants_tasks(db_path: str) -> None:
    async with serving(db_path, security=AUTH) as served:
        workers = [
            Worker(
                served.address,
                [Signed(owner)],
                token=await new_token(served.server, Role.WORKER, tenant=owner),
            )
            for owner in ("acme", "globex")
        ]
        tasks = [asyncio.create_task(worker.run()) for worker in workers]
        try:
            async with (
                tenant(served, "acme") as acme,
                tenant(served, "globex") as globex,
            ):
                await workers_serve(acme.stubs, "signed", sessions=2)
                signed = {"steps": [{"id": "s", "agent": "signed"}]}
                for who in (acme, globex):
                    await create_workflow(who.stubs, "signed", signed)
                # Both sessions serve the agent with a free slot each: the first
                # connected would take every task if tenants did not choose.
                for who in (acme, globex, globex, acme):
                    run = await _run(who.stubs, "signed")
                    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
                    assert plain(run.steps[0].output) == {"by": who.name}
        finally:
            for worker in workers:
                worker.stop()
            await asyncio.gather(*tasks)
