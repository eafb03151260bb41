"""RerunRun and RerunRuns: which runs are re-run, made once per request id.

What a re-run is (which steps run again, the records of those reused) is
podium.engine.rerun's; this module finds the originals, checks them, makes
the calls idempotent and hands the new run to the engine to record and
start. A RerunRun with a request id is made once per (tenant, request id)
as StartRun is (podium.engine.request_ids: the new run carries the id). A
RerunRuns with a request id first stores the originals its filter chose
(RerunBatchRecord), then makes each re-run once under the request id
`{request_id}/{original}`: a retry re-runs the same originals, returns the
runs made already and makes those a crash left unmade.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import uuid
from typing import Any, Protocol

from podium.core.clock import Clock
from podium.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from podium.core.model import RerunBatchRecord, RunRecord, RunView, StepRecord
from podium.core.states import EventType, RunState
from podium.engine import rerun
from podium.engine.ports import RunStore
from podium.engine.request_ids import RequestClaims
from podium.engine.validation import Plan
from podium.engine.workflows import WorkflowCatalog

__all__ = ["DEFAULT_RERUNS", "MAX_RERUNS", "Reruns"]

DEFAULT_RERUNS = 100
MAX_RERUNS = 1000
# What a re-run reads of its original's COMPENSATION_STARTED events: one per
# compensated step, and one more each time a restart during the compensations
# ran them again (bounded by what exists; the ceiling only guards the read).
MAX_COMPENSATION_EVENTS = 1_000_000


class _Engine(Protocol):
    @property
    def store(self) -> RunStore: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def workflows(self) -> WorkflowCatalog: ...
    @property
    def requests(self) -> RequestClaims: ...

    async def get_run(self, run_id: str, *, tenant: str | None = None) -> RunView: ...

    async def launch_rerun(
        self, run: RunRecord, steps: list[StepRecord], plan: Plan
    ) -> RunView: ...


class Reruns:
    def __init__(self, engine: _Engine) -> None:
        self._engine = engine
        # RerunRuns calls under way with a request id, by (tenant, request id),
        # one at a time each: (lock, how many calls use it).
        self._batches: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    async def rerun_run(
        self, run_id: str, names: list[str], *, tenant: str | None, request_id: str
    ) -> RunView:
        if not request_id:
            return await self._checked_rerun(run_id, names, tenant)
        owner = tenant if tenant is not None else await self._tenant_of(run_id)
        request_hash = _hash(["rerun", run_id, names])
        return await self._engine.requests.once(
            owner,
            request_id,
            request_hash,
            lambda: self._checked_rerun(run_id, names, tenant, request_id, request_hash),
        )

    async def _tenant_of(self, run_id: str) -> str:
        found = await self._engine.store.run_tenant(run_id)
        if found is None:
            raise NotFound(f"run {run_id!r} not found", reason="RUN_NOT_FOUND")
        return found

    async def _checked_rerun(
        self,
        run_id: str,
        names: list[str],
        tenant: str | None,
        request_id: str = "",
        request_hash: str = "",
    ) -> RunView:
        original = await self._engine.get_run(run_id, tenant=tenant)
        rerun.check_from_steps(names, {step.step_id for step in original.steps})
        if not original.run.state.is_final:
            raise FailedPrecondition(
                f"run {run_id!r} has not finished (it is {original.run.state.name})",
                reason="RUN_NOT_FINISHED",
            )
        return await self._rerun(original, names, request_id, request_hash)

    async def rerun_runs(
        self,
        *,
        workflow_id: str,
        states: set[RunState],
        labels: dict[str, str],
        from_steps: list[str],
        max_runs: int,
        tenant: str,
        request_id: str,
    ) -> list[tuple[str, RunView]]:
        """rerun_run for each finished run that matches the filter (newest first, at
        most `max_runs`, 0: 100); returns (original run id, new run) pairs. Every
        run is checked before any re-run starts.

        Idempotent on request_id (within the tenant): the originals chosen are
        stored first, and each new run carries `{request_id}/{original}`, so a
        retry (after a restart too) re-runs the same originals, returns the runs
        made already and makes only those a crash left unmade."""
        if max_runs < 0 or max_runs > MAX_RERUNS:
            raise InvalidArgument(
                "invalid max_runs",
                [FieldViolation("max_runs", f"must be between 0 and {MAX_RERUNS}")],
            )
        if any(not state.is_final for state in states):
            raise InvalidArgument(
                "invalid states",
                [FieldViolation("states", "only runs that ended can be re-run")],
            )
        names = from_steps

        async def choose() -> list[RunView]:
            finals = states or {state for state in RunState if state.is_final}
            found = await self._engine.store.list_runs(
                max_runs or DEFAULT_RERUNS,
                workflow_id=workflow_id,
                states=sorted(finals),
                labels=labels,
                tenant=tenant,
            )
            originals = [
                await self._engine.get_run(record.run_id, tenant=tenant) for record in found
            ]
            for view in originals:
                rerun.check_from_steps(names, {step.step_id for step in view.steps})
            return originals

        if not request_id:
            return [(view.run.run_id, await self._rerun(view, names)) for view in await choose()]
        request_hash = _hash(
            ["reruns", workflow_id, sorted(s.name for s in states), labels, names, max_runs]
        )
        key = (tenant, request_id)
        lock, users = self._batches.get(key, (asyncio.Lock(), 0))
        self._batches[key] = (lock, users + 1)
        try:
            async with lock:
                batch = await self._engine.store.get_rerun_batch(request_id, tenant=tenant)
                if batch is None:
                    views = await choose()
                    batch = RerunBatchRecord(
                        tenant,
                        request_id,
                        request_hash,
                        [view.run.run_id for view in views],
                        self._engine.clock.now(),
                    )
                    self._engine.store.put_rerun_batch(batch)
                    await self._engine.store.commit()
                    # The record that stands: another server's, if one made the
                    # same call at the same time (the first write wins).
                    batch = await self._engine.store.get_rerun_batch(request_id, tenant=tenant)
                    if batch is None:  # committed, yet not read back: the store failed
                        raise Unavailable(
                            "the re-run request could not be read back",
                            reason="STORAGE_UNAVAILABLE",
                        )
                if batch.request_hash != request_hash:
                    raise AlreadyExists(
                        f"request_id {request_id!r} was already used for different "
                        "RerunRuns filters",
                        resource="runs",
                        reason="REQUEST_ID_REUSED",
                    )
                pairs = []
                for original in batch.originals:
                    run_request = f"{request_id}/{original}"
                    view = await self._engine.requests.once(
                        tenant,
                        run_request,
                        request_hash,
                        functools.partial(
                            self._checked_rerun, original, names, tenant, run_request, request_hash
                        ),
                    )
                    pairs.append((original, view))
                return pairs
        finally:
            lock, users = self._batches[key]
            if users == 1:
                del self._batches[key]
            else:
                self._batches[key] = (lock, users - 1)

    async def _rerun(
        self,
        original: RunView,
        from_steps: list[str],
        request_id: str = "",
        request_hash: str = "",
    ) -> RunView:
        source = original.run
        workflow = await self._engine.workflows.get(
            source.workflow_id, source.workflow_version, tenant=source.tenant
        )
        plan = self._engine.workflows.plan_for(workflow)
        by_id = {step.step_id: step for step in original.steps}
        compensated = await self._compensated_steps(original, plan)
        again = rerun.steps_to_run_again(by_id, plan.dependents, from_steps, compensated)
        run = RunRecord(
            run_id=uuid.uuid4().hex,
            workflow_id=source.workflow_id,
            workflow_version=source.workflow_version,
            state=RunState.PENDING,
            input=dict(source.input),
            create_time=self._engine.clock.now(),
            request_id=request_id,
            request_hash=request_hash or source.request_hash,
            labels=dict(source.labels),
            max_concurrency=source.max_concurrency,
            priority=source.priority,
            max_cost=source.max_cost,
            tenant=source.tenant,
            rerun_of=source.run_id,
        )
        steps = [
            StepRecord(step_id=spec.id, agent=spec.agent, position=i)
            if spec.id in again or spec.id not in by_id
            else rerun.reused_step(by_id[spec.id], source.run_id)
            for i, spec in enumerate(workflow.spec.steps)
        ]
        return await self._engine.launch_rerun(run, steps, plan)

    async def _compensated_steps(self, original: RunView, plan: Plan) -> set[str]:
        """The steps whose compensation the original started (rerun.py: they
        run again). Only a run that failed or was cancelled compensates."""
        if original.run.state not in (RunState.FAILED, RunState.CANCELLED) or not any(
            step.spec.compensate is not None for step in plan.steps.values()
        ):
            return set()
        events = await self._engine.store.read_events_of_types(
            original.run.run_id, [EventType.COMPENSATION_STARTED], MAX_COMPENSATION_EVENTS
        )
        return {event.step_id for event in events}


def _hash(parts: list[Any]) -> str:
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
