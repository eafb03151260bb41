"""The engine: owns the runs this server executes; starts, cancels and
resumes them. Servicers call it with domain values; it decides and records
through the store port. Nothing here knows about gRPC or SQL.

Workflow definitions are the catalog's (workflows.py); a workflow's
concurrency quota is admission's (admission.py; across a cluster's servers,
shared_admission.py); a run's life is its executor's (executor.py), which
gets narrow services, never the engine.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from podium.core import limits
from podium.core.clock import Clock, SystemClock
from podium.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from podium.core.expressions import ExpressionError
from podium.core.jsonvalues import (
    OFF_LOOP_BYTES,
    TooLarge,
    check_json_size,
    compact_json_within,
    exceeds_json_size,
    from_json_numbers,
)
from podium.core.model import (
    DEFAULT_TENANT,
    AttemptRecord,
    CallbackRecord,
    Event,
    NotificationRecord,
    RunRecord,
    RunView,
    SignalRecord,
    StepRecord,
)
from podium.core.schemas import json_pointer, violations
from podium.core.spec import NotificationSpec, WorkflowVersion
from podium.core.states import RunState, StepState
from podium.engine import estimates, insights, pagination, retention
from podium.engine.admission import KeyedRunAdmission, RunAdmission
from podium.engine.children import ChildLink, EngineChildren
from podium.engine.cluster import ClusterMember, ClusterSettings
from podium.engine.executor import RunExecutor
from podium.engine.history import finished_runs
from podium.engine.hub import EventHub
from podium.engine.notifier import Notifier
from podium.engine.observer import RunObserver
from podium.engine.ports import ClusterStore, RunCommand, RunStore
from podium.engine.recorder import Recorder
from podium.engine.recovery import recover
from podium.engine.relay import TaskRelay
from podium.engine.relay_store import RelayStore
from podium.engine.request_ids import RequestClaims
from podium.engine.reruns import Reruns
from podium.engine.services import RunServices
from podium.engine.shared_admission import SharedRunAdmission, run_concurrency_lease
from podium.engine.slots import PrioritySlots
from podium.engine.validation import SIGNAL_NAME, Plan, check_notification
from podium.engine.workers import WorkerPool
from podium.engine.workflows import WORKFLOW_ID, WorkflowCatalog
from podium.governance.service import Governance
from podium.plugins.registry import Registry

log = logging.getLogger("podium.engine")

DEFAULT_MAX_CONCURRENCY = 256
DEFAULT_MAX_RUNNING_STEPS = 1024
CANCEL_WAIT_SECONDS = 5.0
# From this many attempts, get_run copies a running run's records (a few
# milliseconds) so that the caller can translate them off the event loop.
SNAPSHOT_ATTEMPTS = 500
# Cluster mode: how long CancelRun / ResolveApproval for a run owned elsewhere
# wait for its owner to carry them out (long enough for a takeover in between).
COMMAND_WAIT_SECONDS = 30.0
# The records `_copy_record` copies (a run view snapshot taken off the live objects).
R = TypeVar("R", RunRecord, StepRecord, AttemptRecord)


@dataclass(frozen=True)
class KeptState:
    """What a run being resumed kept besides its steps."""

    notification: NotificationRecord | None
    signals: list[SignalRecord]
    callbacks: list[CallbackRecord]


class Engine:
    def __init__(
        self,
        store: RunStore,
        registry: Registry,
        governance: Governance,
        *,
        hub: EventHub | None = None,
        clock: Clock | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_running_steps: int = DEFAULT_MAX_RUNNING_STEPS,
        observer: RunObserver | None = None,
        notifier: Notifier | None = None,
        cluster: ClusterStore | None = None,
        cluster_settings: ClusterSettings | None = None,
        relay: RelayStore | None = None,
    ) -> None:
        """`relay` (cluster mode): the task relay's store, through which workers
        connected to other servers run this server's steps and the reverse."""
        self.store = store
        # Delivers runs' completion notifications (None: they stay PENDING).
        self.notifier = notifier
        self.hub = hub or EventHub()
        self.clock: Clock = clock or SystemClock()
        self.workers = WorkerPool(self.clock)
        self.relay = None if relay is None or cluster is None else TaskRelay(relay, self.workers)
        self.workflows = WorkflowCatalog(
            store, registry, self.clock, self.workers, vet=governance.oversized_calls
        )
        children = EngineChildren()
        self.services = RunServices(
            clock=self.clock,
            store=store,
            recorder=Recorder(store, self.hub),
            registry=registry,
            governance=governance,
            # Server-wide limit on agent calls in flight, granted by run priority.
            slots=PrioritySlots(max_running_steps, self.clock),
            default_max_concurrency=max_concurrency,
            observer=observer,
            workers=self.workers,
            relay=self.relay,
            deltas=self.hub,
            children=children,
        )
        children.bind(self)
        self.admission = RunAdmission(governance.quotas)
        self.keyed_admission = KeyedRunAdmission()
        self.active: dict[str, RunExecutor] = {}
        self.requests = RequestClaims(self._run_with_request_id, self.get_run)
        self.reruns = Reruns(self)
        self._recovery: asyncio.Task[None] | None = None
        self._closed = False
        # Cluster mode (several servers on one database): None on a single server.
        self.cluster: ClusterMember | None = None
        # Cluster mode: run admission's leases held across servers.
        self.shared_admission: SharedRunAdmission | None = None
        if cluster is not None:
            self.cluster = ClusterMember(
                cluster,
                cluster_settings or ClusterSettings(),
                self.hub,
                resume=self._take_over,
                lose=self._lose,
                apply=self._apply_command,
                durable=self.services.recorder.durable,
                sync=governance.sync_cluster,
                relay=self.relay,
            )
            self.shared_admission = SharedRunAdmission(governance, self.cluster.joined.wait)

    @property
    def running_steps(self) -> int:
        """Agent calls in flight, server-wide."""
        return self.services.slots.in_use

    # -- runs ------------------------------------------------------------------

    async def start_run(
        self,
        workflow_id: str,
        *,
        version: int = 0,
        input: Mapping[str, Any] | None = None,
        request_id: str = "",
        labels: Mapping[str, str] | None = None,
        max_concurrency: int = 0,
        priority: int = 0,
        max_cost: Decimal | None = None,
        trace_parent: str = "",
        tenant: str = DEFAULT_TENANT,
        notification: NotificationSpec | None = None,
    ) -> RunView:
        """Starts a run of a tenant's workflow; the run belongs to that tenant. It is
        durable when this returns. Idempotent on request_id (within the tenant).

        `trace_parent`: the caller's W3C traceparent; the run's span becomes its child."""
        self._check_open()
        if max_concurrency < 0:
            raise InvalidArgument(
                "invalid max_concurrency",
                [FieldViolation("max_concurrency", "must be 0 (workflow default) or positive")],
            )
        if max_cost is not None and max_cost < 0:
            raise InvalidArgument(
                "invalid max_cost", [FieldViolation("max_cost", "must not be negative")]
            )
        if notification is not None:
            violations: list[FieldViolation] = []
            check_notification(
                notification.url,
                notification.secret,
                "notification",
                lambda field, reason: violations.append(FieldViolation(field, reason)),
            )
            if violations:
                raise InvalidArgument("invalid notification", violations)
        input_value = dict(input or {})
        labels_value = dict(labels or {})

        def encode() -> tuple[str, str]:
            # The input's stored text (checked against max_input_bytes) and the
            # request's hash: a pure function of values nobody else holds yet.
            input_json = _input_json(input_value)
            return input_json, _request_hash(
                workflow_id,
                version,
                input_value,
                labels_value,
                max_concurrency,
                priority,
                None if max_cost is None else str(max_cost),
                notification,
            )

        if exceeds_json_size(input_value, OFF_LOOP_BYTES):
            input_json, request_hash = await asyncio.to_thread(encode)
        else:
            input_json, request_hash = encode()
        if not request_id:
            return await self._create_run(
                tenant,
                workflow_id,
                version,
                input_value,
                "",
                request_hash,
                labels_value,
                max_concurrency,
                priority,
                max_cost,
                trace_parent,
                notification,
                input_json=input_json,
            )
        return await self.requests.once(
            tenant,
            request_id,
            request_hash,
            lambda: self._create_run(
                tenant,
                workflow_id,
                version,
                input_value,
                request_id,
                request_hash,
                labels_value,
                max_concurrency,
                priority,
                max_cost,
                trace_parent,
                notification,
                input_json=input_json,
            ),
        )

    async def _run_with_request_id(self, request_id: str, tenant: str) -> str | None:
        found = await self.store.find_run_by_request_id(request_id, tenant=tenant)
        return None if found is None else found.run_id

    async def _create_run(
        self,
        tenant: str,
        workflow_id: str,
        version: int,
        input: dict[str, Any],
        request_id: str,
        request_hash: str,
        labels: dict[str, str],
        max_concurrency: int,
        priority: int,
        max_cost: Decimal | None,
        trace_parent: str,
        notification: NotificationSpec | None,
        link: ChildLink | None = None,
        *,
        input_json: str,
    ) -> RunView:
        """`input_json`: the input's stored text (see _input_json)."""
        workflow = await self.workflows.get(workflow_id, version, tenant=tenant)
        _check_input_schema(workflow.spec.input_schema, input)
        plan = self.workflows.plan_for(workflow)
        _check_run_key(plan, input)
        # What expressions see of the input: made in a worker thread when large
        # (before anything is recorded, so that the run is created in one go).
        input_scope = None
        if len(input_json) > OFF_LOOP_BYTES:
            input_scope = await asyncio.to_thread(from_json_numbers, input)
        now = self.clock.now()
        run = RunRecord(
            run_id=link.run_id if link is not None else uuid.uuid4().hex,
            workflow_id=workflow_id,
            workflow_version=workflow.version,
            state=RunState.PENDING,
            input=input,
            create_time=now,
            request_id=request_id,
            request_hash=request_hash,
            labels={**workflow.spec.labels, **labels},
            max_concurrency=max_concurrency,
            priority=priority,
            max_cost=_lower(max_cost, workflow.spec.max_cost),
            trace_parent=trace_parent,
            tenant=tenant,
            input_json=input_json,
        )
        if link is not None:
            run.parent_run_id, run.parent_step_id = link.parent_run_id, link.parent_step_id
            run.depth = link.depth
        steps = [
            StepRecord(step_id=step.id, agent=step.agent, position=i)
            for i, step in enumerate(workflow.spec.steps)
        ]
        recorder = self.services.recorder
        if self.cluster is not None:
            # The receiving server owns the run: no hop, and clients that spread
            # their StartRun calls spread the runs.
            self.cluster.store.own_new_run(run.run_id)
        recorder.run(run)
        for step in steps:
            recorder.step(run.run_id, step)
        notify = notification or workflow.spec.notification
        armed = None
        if notify is not None:
            armed = NotificationRecord(run.run_id, notify.url, notify.secret)
            self.store.put_notification(armed)
        executor = self._executor(run, steps, plan, notification=armed, input_scope=input_scope)
        executor.created()
        await recorder.durable()
        self.active[run.run_id] = executor
        self._start_when_admitted(executor)
        return RunView(run, list(executor.steps.values()))

    async def start_child(
        self,
        link: ChildLink,
        workflow_id: str,
        version: int,
        input: dict[str, Any],
        max_cost: Decimal | None,
        parent: RunRecord,
    ) -> RunView:
        """Starts a child run (podium.engine.children): the parent's tenant and
        priority, its span's child, with `max_cost` lowering the workflow's."""
        self._check_open()
        input_json = _input_json(input)
        return await self._create_run(
            parent.tenant,
            workflow_id,
            version,
            input,
            "",
            "",
            {},
            0,
            parent.priority,
            max_cost,
            parent.trace_context,
            None,
            link,
            input_json=input_json,
        )

    def _executor(
        self,
        run: RunRecord,
        steps: list[StepRecord],
        plan: Plan,
        *,
        signals: list[SignalRecord] | None = None,
        callbacks: list[CallbackRecord] | None = None,
        notification: NotificationRecord | None = None,
        input_scope: dict[str, Any] | None = None,
    ) -> RunExecutor:
        return RunExecutor(
            self.services,
            run,
            steps,
            plan,
            on_finished=self._run_finished,
            signals=signals,
            callbacks=callbacks,
            notification=notification,
            input_scope=input_scope,
        )

    async def check_tenant(self, run_id: str, tenant: str | None) -> None:
        """NotFound unless the run exists and belongs to `tenant` (None: any tenant).
        Another tenant's run is not found, never forbidden: its existence is not told."""
        if tenant is None:
            return
        executor = self.active.get(run_id)
        owner = executor.run.tenant if executor is not None else await self.store.run_tenant(run_id)
        if owner != tenant:
            raise NotFound(f"run {run_id!r} not found", reason="RUN_NOT_FOUND")

    async def get_run(self, run_id: str, *, tenant: str | None = None) -> RunView:
        """A run; with `tenant`, only one of that tenant's (else NotFound)."""
        executor = self.active.get(run_id)
        if executor is not None and tenant is not None and executor.run.tenant != tenant:
            raise NotFound(f"run {run_id!r} not found", reason="RUN_NOT_FOUND")
        if executor is not None:
            steps = list(executor.steps.values())
            if sum(len(step.attempts) for step in steps) > SNAPSHOT_ATTEMPTS:
                # Large: a copy, which the caller may read off the event loop.
                return _snapshot(executor.run, steps)
            return RunView(executor.run, steps, live=True)
        view = await self.store.get_run(run_id)
        if view is None or (tenant is not None and view.run.tenant != tenant):
            raise NotFound(f"run {run_id!r} not found", reason="RUN_NOT_FOUND")
        return view

    async def list_runs(
        self,
        page_size: int,
        page_token: str,
        *,
        workflow_id: str = "",
        states: Collection[RunState] = (),
        labels: Mapping[str, str] | None = None,
        tenant: str = DEFAULT_TENANT,
        parent_run_id: str = "",
    ) -> tuple[list[RunRecord], str]:
        """A page of runs, newest first, and the next page's token. Runs this
        server is executing are shown as they are in memory (fresher than the
        store)."""
        size = pagination.page_size(page_size)
        key = pagination.decode_token(page_token)
        after: tuple[float, str] | None = None
        if key is not None:
            if len(key) != 2 or not isinstance(key[0], int | float) or not isinstance(key[1], str):
                raise pagination.bad_token()
            after = (float(key[0]), key[1])
        found = await self.store.list_runs(
            size + 1,
            after=after,
            workflow_id=workflow_id,
            states=states,
            labels=dict(labels or {}),
            tenant=tenant,
            parent_run_id=parent_run_id,
        )
        page = found[:size]
        token = ""
        if len(found) > size:
            token = pagination.encode_token(page[-1].create_time, page[-1].run_id)
        active = self.active
        return [active[r.run_id].run if r.run_id in active else r for r in page], token

    async def run_status(self, run_id: str, *, tenant: str | None = None) -> tuple[RunState, int]:
        """A run's state and last event sequence, without reading its steps."""
        await self.check_tenant(run_id, tenant)
        executor = self.active.get(run_id)
        if executor is not None:
            return executor.run.state, executor.run.last_sequence
        status = await self.store.run_status(run_id)
        if status is None:
            raise NotFound(f"run {run_id!r} not found", reason="RUN_NOT_FOUND")
        return status

    async def read_events(self, run_id: str, after_sequence: int, limit: int) -> list[Event]:
        return await self.store.read_events(run_id, after_sequence, limit)

    async def delete_run(self, run_id: str, *, tenant: str | None = None) -> None:
        """Deletes a finished run with everything recorded about it."""
        await self.check_tenant(run_id, tenant)
        await retention.delete_run(self.store, self.active, run_id)
        self.hub.forget(run_id)

    async def cancel_run(
        self, run_id: str, reason: str = "", *, tenant: str | None = None
    ) -> RunView:
        self._check_open()
        await self.check_tenant(run_id, tenant)
        executor = self.active.get(run_id)
        if executor is None:
            view = await self.get_run(run_id)
            if view.run.state == RunState.CANCELLED:
                return view
            if self.cluster is not None and not view.run.state.is_final:
                return await self._ask_owner(run_id, "cancel", {"reason": reason})
            raise self._not_active(run_id, view.run.state)
        executor.cancel(reason)
        # Running agents see CancelledError; give them a moment to unwind so
        # that the reply (and any read after it) shows the final state.
        try:
            await asyncio.wait_for(executor.finished.wait(), CANCEL_WAIT_SECONDS)
        except TimeoutError:
            log.warning(
                "run %s: agents still unwinding after cancellation",
                run_id,
                extra={"run_id": run_id},
            )
        # Settled, not only durable: a DeleteRun right after this reply finds the
        # run out of the running set.
        await self.services.recorder.settled()
        return RunView(executor.run, list(executor.steps.values()))

    async def pause_run(
        self, run_id: str, reason: str = "", *, actor: str = "", tenant: str | None = None
    ) -> RunView:
        """Pauses a run (see pausing.py); durable when this returns. A no-op on a
        paused run; FailedPrecondition on a run that ended."""
        return await self._pause_or_resume(
            run_id, "pause", {"reason": reason, "actor": actor}, tenant
        )

    async def resume_run(
        self, run_id: str, *, actor: str = "", tenant: str | None = None
    ) -> RunView:
        """Resumes a paused run; a no-op on a run that is not paused."""
        return await self._pause_or_resume(run_id, "resume", {"actor": actor}, tenant)

    async def _pause_or_resume(
        self, run_id: str, kind: str, body: dict[str, Any], tenant: str | None
    ) -> RunView:
        self._check_open()
        await self.check_tenant(run_id, tenant)
        executor = self.active.get(run_id)
        if executor is None or executor.finished.is_set():
            view = await self.get_run(run_id)
            if self.cluster is not None and not view.run.state.is_final:
                return await self._ask_owner(run_id, kind, body)
            raise self._not_active(run_id, view.run.state)
        if kind == "pause":
            executor.pause(str(body.get("reason", "")), str(body.get("actor", "")))
        else:
            executor.resume(str(body.get("actor", "")))
        await self.services.recorder.durable()
        return RunView(executor.run, list(executor.steps.values()))

    # -- re-runs (see reruns.py) ------------------------------------------------------

    async def rerun_run(
        self,
        run_id: str,
        from_steps: Collection[str] = (),
        *,
        tenant: str | None = None,
        request_id: str = "",
    ) -> RunView:
        """A new run of a finished run's workflow version and input, reusing the
        outputs of its succeeded steps (all but `from_steps` and downstream).
        Idempotent on request_id (within the tenant), as StartRun."""
        self._check_open()
        return await self.reruns.rerun_run(
            run_id, list(from_steps), tenant=tenant, request_id=request_id
        )

    async def rerun_runs(
        self,
        *,
        workflow_id: str = "",
        states: Collection[RunState] = (),
        labels: Mapping[str, str] | None = None,
        from_steps: Collection[str] = (),
        max_runs: int = 0,
        tenant: str = DEFAULT_TENANT,
        request_id: str = "",
    ) -> list[tuple[str, RunView]]:
        """rerun_run for each finished run that matches the filter (newest first, at
        most `max_runs`, 0: 100); returns (original run id, new run) pairs.
        Idempotent on request_id (reruns.py)."""
        self._check_open()
        return await self.reruns.rerun_runs(
            workflow_id=workflow_id,
            states=set(states),
            labels=dict(labels or {}),
            from_steps=list(from_steps),
            max_runs=max_runs,
            tenant=tenant,
            request_id=request_id,
        )

    async def launch_rerun(self, run: RunRecord, steps: list[StepRecord], plan: Plan) -> RunView:
        """Records a re-run (durable on return) and starts it when admitted."""
        recorder = self.services.recorder
        if self.cluster is not None:
            self.cluster.store.own_new_run(run.run_id)
        recorder.run(run)
        for step in steps:
            recorder.step(run.run_id, step)
        executor = self._executor(run, steps, plan)
        executor.created()
        await recorder.durable()
        self.active[run.run_id] = executor
        self._start_when_admitted(executor)
        return RunView(run, list(executor.steps.values()))

    async def resolve_approval(
        self,
        run_id: str,
        step_id: str,
        *,
        approve: bool,
        comment: str = "",
        actor: str = "",
        tenant: str | None = None,
    ) -> RunView:
        """Approves or rejects a waiting approval step; `actor` (who) goes in
        its APPROVAL_RESOLVED event."""
        self._check_open()
        await self.check_tenant(run_id, tenant)
        executor = self.active.get(run_id)
        if executor is None:
            view = await self.get_run(run_id)
            if self.cluster is not None and not view.run.state.is_final:
                body = {"step_id": step_id, "approve": approve, "comment": comment, "actor": actor}
                return await self._ask_owner(run_id, "approval", body)
            raise self._not_active(run_id, view.run.state)
        if step_id not in executor.steps:
            raise NotFound(f"run {run_id!r} has no step {step_id!r}", reason="STEP_NOT_FOUND")
        if not executor.waiting_approval(step_id):
            step = executor.steps[step_id]
            planned = executor.plan.steps.get(step_id)
            if (
                step.state == StepState.WAITING
                and planned is not None
                and planned.spec.approval is not None
            ):
                # Stored as waiting for its decision, not yet waiting again in this
                # process (a resumed run schedules it anew): the caller retries shortly.
                raise self._not_active(run_id, executor.run.state)
            state = step.state.name
            raise FailedPrecondition(
                f"step {step_id!r} is not waiting for approval (it is {state})",
                reason="NOT_WAITING_FOR_APPROVAL",
            )
        executor.resolve_approval(step_id, approve, comment, actor)
        await self.services.recorder.durable()
        return RunView(executor.run, list(executor.steps.values()))

    # -- signals and callbacks -----------------------------------------------------

    async def signal_run(
        self,
        run_id: str,
        name: str,
        payload: Any = None,
        *,
        request_id: str = "",
        actor: str = "",
        tenant: str | None = None,
    ) -> SignalRecord:
        """Sends a signal to a run (see SignalBox); durable when this returns.
        Idempotent on request_id within the run."""
        self._check_open()
        violations = []
        if not SIGNAL_NAME.fullmatch(name):
            violations.append(FieldViolation("name", "must match [A-Za-z0-9_.-]{1,128}"))
        try:
            check_json_size(payload, limits.current().max_input_bytes)
        except TooLarge as error:
            violations.append(FieldViolation("payload", f"too large: {error} (max_input_bytes)"))
        if violations:
            raise InvalidArgument("invalid signal", violations)
        await self.check_tenant(run_id, tenant)
        executor = self.active.get(run_id)
        if request_id:
            if executor is not None:
                existing = executor.signals.find(request_id)
            else:
                stored = await self.store.signals_of(run_id)
                existing = next((s for s in stored if s.request_id == request_id), None)
            if existing is not None:
                if existing.name != name or existing.payload != payload:
                    raise AlreadyExists(
                        f"request_id {request_id!r} was already used for another signal "
                        f"of run runs/{run_id}",
                        resource=f"runs/{run_id}",
                        reason="REQUEST_ID_REUSED",
                    )
                return existing
        if executor is None or executor.finished.is_set():
            view = await self.get_run(run_id)
            raise self._not_active(run_id, view.run.state)
        signal = executor.signals.receive(name, payload, request_id, actor)
        await self.services.recorder.durable()
        return signal

    async def complete_callback(
        self, token: str, payload: Any = None, *, actor: str = "", tenant: str | None = None
    ) -> CallbackRecord:
        """Completes the callback step waiting for `token` (single use). With
        `tenant`, only a token of that tenant's runs; None: the token alone is
        the capability (the hook for the HTTP callback URL of a later issue)."""
        self._check_open()
        try:
            check_json_size(payload, limits.current().max_input_bytes)
        except TooLarge as error:
            raise InvalidArgument(
                "invalid payload",
                [FieldViolation("payload", f"too large: {error} (max_input_bytes)")],
            ) from None
        not_found = NotFound("no callback waits for this token", reason="CALLBACK_NOT_FOUND")
        if not token or len(token) > 256:
            raise not_found
        record = await self.store.get_callback(token)
        if record is None or record.outcome or (tenant is not None and record.tenant != tenant):
            raise not_found
        executor = self.active.get(record.run_id)
        if executor is None:
            status = await self.store.run_status(record.run_id)
            if status is not None and not status[0].is_final:
                raise self._not_active(record.run_id, status[0])
            raise not_found
        if executor.finished.is_set():
            raise not_found
        completed = executor.callbacks.complete(token, payload, actor)
        if completed is None:
            raise not_found
        await self.services.recorder.durable()
        return completed

    @staticmethod
    def _not_active(run_id: str, state: RunState) -> FailedPrecondition:
        if state.is_final:
            return FailedPrecondition(
                f"run {run_id!r} already ended {state.name}", reason="RUN_ALREADY_ENDED"
            )
        return FailedPrecondition(
            f"run {run_id!r} is being resumed; try again", reason="RUN_RESUMING"
        )

    def _run_finished(self, executor: RunExecutor) -> None:
        run = executor.run
        if self.active.get(run.run_id) is executor:
            del self.active[run.run_id]
        self.admission.run_ended(run.run_id, run.workflow_id)
        if executor.notification is not None and self.notifier is not None:
            self.notifier.wake()
        self.keyed_admission.run_ended(run.run_id)
        if self.shared_admission is not None:
            self.shared_admission.run_ended(run.run_id)
        if self.cluster is not None:
            self.cluster.store.release_run(run.run_id)
        if self.relay is not None:
            self.relay.run_ended(run.run_id)

    # -- cluster mode -------------------------------------------------------------------

    async def _take_over(self, run_ids: list[str]) -> None:
        """Runs this server now owns (taken over, or its own from before a restart
        under the same id): resumed exactly as after a restart, with the calls
        their last owner left in flight charged at their worst case."""
        await self.services.governance.adopt_left_open(run_ids)
        if self.relay is not None:
            # Before resuming: their relayed attempts in flight are awaited, not re-run.
            await self.relay.adopt(run_ids)
        for run_id in run_ids:
            self.hub.regain(run_id)
            try:
                view = await self.store.get_run(run_id)
                if view is not None:
                    await self._resume(view, {})
            except Exception:
                log.exception("could not take over run %s", run_id, extra={"run_id": run_id})

    def _lose(self, run_ids: set[str]) -> None:
        """Another server owns these runs now (this one was presumed dead): stop
        driving them; their writes from here on are fenced off anyway."""
        assert self.cluster is not None
        for run_id in run_ids:
            self.hub.lose(run_id)
            self.cluster.store.forget_run(run_id)
            executor = self.active.pop(run_id, None)
            if executor is not None:
                log.warning(
                    "run %s: owned by another server now; stopped here",
                    run_id,
                    extra={"run_id": run_id},
                )
                # Its places here and in the database: the new owner takes its own.
                self.admission.run_ended(run_id, executor.run.workflow_id)
                self.keyed_admission.run_ended(run_id)
                if self.shared_admission is not None:
                    self.shared_admission.run_ended(run_id)
                task = asyncio.ensure_future(executor.stop())
                task.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def _apply_command(self, command: RunCommand) -> dict[str, Any] | None:
        """Carries out a command another server queued for a run owned here; the
        result is what that server replies (an error by reason, or {}); None: not
        now, the run is not running here yet (being taken over)."""
        _, run_id, kind, body = command
        if run_id not in self.active:
            return None
        try:
            if kind == "cancel":
                await self.cancel_run(run_id, str(body.get("reason", "")))
            elif kind in ("pause", "resume"):
                await self._pause_or_resume(run_id, kind, body, None)
            elif kind == "approval":
                await self.resolve_approval(
                    run_id,
                    str(body["step_id"]),
                    approve=bool(body["approve"]),
                    comment=str(body.get("comment", "")),
                    actor=str(body.get("actor", "")),
                )
            else:
                return {"error": "internal", "message": f"unknown command {kind!r}"}
        except (NotFound, FailedPrecondition) as error:
            kind_name = "not_found" if isinstance(error, NotFound) else "failed_precondition"
            return {"error": kind_name, "reason": error.reason, "message": error.message}
        return {}

    async def _ask_owner(self, run_id: str, kind: str, body: dict[str, Any]) -> RunView:
        """Queues a command for the run's owner (another server) and waits until it
        is carried out, or the run ends, or COMMAND_WAIT_SECONDS pass."""
        assert self.cluster is not None
        store = self.cluster.store
        command_id = await store.post_command(run_id, kind, body, time.time())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + COMMAND_WAIT_SECONDS
        poll = self.cluster.settings.poll_seconds
        while True:
            result = await store.command_result(command_id)
            if result is not None:
                break
            status = await self.store.run_status(run_id)
            if status is not None and status[0].is_final:
                # Ended before its owner saw the command; read the result once more.
                result = await store.command_result(command_id)
                break
            if loop.time() > deadline:
                raise Unavailable(
                    f"the server that owns run {run_id!r} did not answer; try again",
                    reason="RUN_RESUMING",
                )
            await asyncio.sleep(poll)
        if result is None:
            view = await self.get_run(run_id)
            if kind == "cancel" and view.run.state == RunState.CANCELLED:
                return view
            raise self._not_active(run_id, view.run.state)
        _raise_refusal(result, kind)
        return await self.get_run(run_id)

    def _start_when_admitted(self, executor: RunExecutor) -> None:
        run = executor.run
        run_id = run.run_id
        limit = executor.plan.spec.run_concurrency
        key = _run_key(executor.plan, run.input)

        def still_waiting() -> bool:
            # This executor, not a later one of the same run (lost, then taken back).
            return not executor.finished.is_set() and self.active.get(run_id) is executor

        begin: Callable[[], None] = executor.start
        shared = self.shared_admission
        if shared is not None:

            def begin_shared() -> None:
                # Cluster mode: after the local admission, the same limits across servers.
                leases = self.services.governance.run_quota_leases(run.workflow_id)
                if limit is not None and key is not None:
                    name = run_concurrency_lease(run.tenant, run.workflow_id, key)
                    leases.append((name, limit.max_runs))
                shared.start_when_admitted(run_id, leases, executor.start, still_waiting)

            begin = begin_shared

        def start() -> None:
            self.admission.start_when_admitted(run_id, run.workflow_id, begin, still_waiting)

        if limit is None or key is None:
            start()
            return
        place = (run.tenant, run.workflow_id, key)
        self.keyed_admission.start_when_admitted(
            run_id, place, limit.max_runs, start, still_waiting
        )

    # -- history -------------------------------------------------------------------

    async def workflow_insights(self, workflow_id: str, window: float = 0.0) -> insights.Insights:
        """Insights of a workflow's finished runs of the last `window` seconds
        (0: every stored run, at most history.MAX_RUNS), against its latest version."""
        if window < 0:
            raise InvalidArgument(
                "invalid window", [FieldViolation("window", "must not be negative")]
            )
        workflow = await self.workflows.get(workflow_id)
        plan = self.workflows.plan_for(workflow)
        since = self.clock.now() - window if window else float("-inf")
        histories = await finished_runs(self.store, workflow_id, since)
        return insights.compute(
            workflow_id,
            plan,
            histories,
            prices=self._prices(),
            max_concurrency=self.services.default_max_concurrency,
        )

    async def estimate(self, workflow_id: str, plan: Plan) -> estimates.Estimate:
        """What a run of `plan` is expected to take and cost: from the stored
        workflow's finished runs, else from the price table."""
        if workflow_id and not WORKFLOW_ID.match(workflow_id):
            raise InvalidArgument(
                "invalid workflow_id",
                [
                    FieldViolation(
                        "workflow_id", "must match [a-z][a-z0-9-]* (at most 63 characters)"
                    )
                ],
            )
        return await estimates.estimate(
            self.store, self.services.governance.prices, workflow_id, plan
        )

    def _prices(self) -> list[insights.ModelPrice]:
        table = self.services.governance.prices.entries()
        return [
            insights.ModelPrice(provider, model, price.input, price.output)
            for (provider, model), price in table.items()
        ]

    # -- start-up and shutdown ---------------------------------------------------

    def start_recovery(self) -> asyncio.Task[None]:
        """Resumes unfinished runs in the background: the server answers
        (health, GetRun) while this proceeds. In cluster mode: joins the cluster,
        which resumes the runs of an earlier life under this server's id and
        takes over those of stopped servers (others' runs are theirs)."""
        cluster = self.cluster
        if cluster is not None:
            self._recovery = asyncio.create_task(cluster.start(), name="podium-cluster-join")
            return self._recovery
        pinned: dict[tuple[str, str, int], WorkflowVersion | None] = {}
        # What each run of the batch being resumed kept, read for the whole batch at once.
        kept: dict[str, KeptState] = {}

        async def prepare(views: list[RunView]) -> None:
            kept.clear()
            kept.update(await self._kept_of([view.run.run_id for view in views]))

        async def resume(view: RunView) -> None:
            await self._resume(view, pinned, kept.pop(view.run.run_id, None))

        async def recover_then_charge() -> None:
            await recover(self.store, resume, lambda: self._closed, prepare=prepare)
            # Calls in flight at the crash whose run did not resume.
            self.services.governance.charge_all_left_open()

        self._recovery = asyncio.create_task(recover_then_charge(), name="podium-recovery")
        return self._recovery

    async def _kept_of(self, run_ids: list[str]) -> dict[str, KeptState]:
        """What runs being resumed kept besides their steps: notifications,
        signals and callbacks, in three reads for all of them (three per run
        made the reads of a restart over 1,000 runs take most of a second,
        behind which every API read queued). Nothing changes them while a run
        is not active here: signals and callbacks for it are refused with
        RUN_RESUMING until it is."""
        notifications, signals, callbacks = await asyncio.gather(
            self.store.notifications_of(run_ids),
            self.store.signals_of_runs(run_ids),
            self.store.callbacks_of_runs(run_ids),
        )
        return {
            run_id: KeptState(
                notifications.get(run_id), signals.get(run_id, []), callbacks.get(run_id, [])
            )
            for run_id in run_ids
        }

    async def _resume(
        self,
        view: RunView,
        pinned: dict[tuple[str, str, int], WorkflowVersion | None],
        kept: KeptState | None = None,
    ) -> None:
        """Resumes one run read back from the store; `pinned` caches the
        workflow versions of this recovery (runs share a few versions, and so
        their spec and plan); `kept`: what `_kept_of` read for it, if read already."""
        run = view.run
        run_id = run.run_id
        if run.state.is_final or run_id in self.active:
            return
        key = (run.tenant, run.workflow_id, run.workflow_version)
        if key not in pinned:
            pinned[key] = await self.workflows.pinned(
                run.workflow_id, run.workflow_version, tenant=run.tenant
            )
        workflow = pinned[key]
        if workflow is None:
            log.error(
                "run %s: workflow version is gone; cannot resume", run_id, extra={"run_id": run_id}
            )
            return
        # The batch read gave its last sequence already.
        if kept is None:
            kept = (await self._kept_of([run_id]))[run_id]
        if run_id in self.active:  # resumed meanwhile (never twice)
            return
        notification = kept.notification
        executor = self._executor(
            run,
            view.steps,
            self.workflows.plan_for(workflow),
            signals=kept.signals,
            callbacks=kept.callbacks,
            notification=notification if notification and notification.state == "ARMED" else None,
        )
        self._charge_open_calls(executor)
        self.active[run_id] = executor
        self._start_when_admitted(executor)

    def _charge_open_calls(self, executor: RunExecutor) -> None:
        """A resumed run's ceiling counts what it spent before the restart, and
        the calls it had in flight then, charged at their worst case (fail
        closed) with an LLM_CALL event each, in one transaction with the
        deletion of their reservations."""
        journal, governance = executor.journal, self.services.governance
        for stored in governance.resume_run(journal.run.run_id, journal.run.cost):
            version = governance.charge_left_open(stored)
            journal.open_call_charged(
                stored.step_id,
                stored.attempt,
                stored.item,
                stored.amount,
                stored.provider,
                stored.model,
                version,
            )

    async def shutdown(self) -> None:
        """Stops executing; unfinished runs stay resumable in the store."""
        self._closed = True
        if self._recovery is not None and not self._recovery.done():
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)
        if self.cluster is not None:
            await self.cluster.stop(leave=False)
        if self.shared_admission is not None:
            await self.shared_admission.close()
        await asyncio.gather(*(executor.stop() for executor in list(self.active.values())))
        self.active.clear()
        self.hub.close_all()
        if self.cluster is not None:
            # After the last write of this server's runs: the others take them over now.
            await self.cluster.stop(leave=True)

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("the server is shutting down", reason="SHUTTING_DOWN")


def _run_key(plan: Plan, input: Mapping[str, Any]) -> str | None:
    """The run's run_concurrency key, or None (no key, or it cannot be
    evaluated: StartRun refuses such a run, so only an old one can be here)."""
    if plan.run_key is None:
        return None
    try:
        value = plan.run_key.evaluate({"input": from_json_numbers(dict(input))})
    except ExpressionError:
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _check_run_key(plan: Plan, input: Mapping[str, Any]) -> None:
    if plan.run_key is None:
        return
    try:
        plan.run_key.evaluate({"input": from_json_numbers(dict(input))})
    except ExpressionError as error:
        raise InvalidArgument(
            "the run's concurrency key cannot be computed from its input",
            [FieldViolation("input", f"run_concurrency.key failed: {error}")],
        ) from None


def _check_input_schema(schema: Mapping[str, Any] | None, value: dict[str, Any]) -> None:
    found = [] if schema is None else violations(schema, value)
    if found:
        raise InvalidArgument(
            "the input violates the workflow's input_schema",
            [FieldViolation(f"/input{json_pointer(path)}", reason) for path, reason in found],
            reason="INPUT_SCHEMA_VIOLATED",
        )


def _raise_refusal(result: dict[str, Any], kind: str) -> None:
    """The owner's refusal of a command (cluster mode) as the error it raised there."""
    error, reason = result.get("error"), result.get("reason")
    message = str(result.get("message", ""))
    if not error:
        return
    if reason == "RUN_NOT_FOUND":
        raise NotFound(message, reason="RUN_NOT_FOUND")
    if reason == "STEP_NOT_FOUND":
        raise NotFound(message, reason="STEP_NOT_FOUND")
    if reason == "NOT_WAITING_FOR_APPROVAL":
        raise FailedPrecondition(message, reason="NOT_WAITING_FOR_APPROVAL")
    if reason == "RUN_ALREADY_ENDED":
        raise FailedPrecondition(message, reason="RUN_ALREADY_ENDED")
    raise Unavailable(
        f"the run's owner could not carry out {kind}: {message}", reason="RUN_RESUMING"
    )


def _input_json(input: dict[str, Any]) -> str:
    """A run's input as stored (JSON text), within max_input_bytes (it is
    stored, sent in replies and evaluated against in every step's expressions)."""
    max_bytes = limits.current().max_input_bytes
    try:
        return compact_json_within(input, max_bytes)
    except TooLarge as error:
        raise InvalidArgument(
            "invalid input",
            [FieldViolation("input", f"too large: {error} (max_input_bytes)")],
        ) from None
    except ValueError as error:
        # NaN or a cycle: a checked request never holds one.
        raise InvalidArgument(
            "invalid input", [FieldViolation("input", f"not JSON: {error}")]
        ) from None


def _request_hash(
    workflow_id: str,
    version: int,
    input: dict[str, Any],
    labels: dict[str, str],
    max_concurrency: int,
    priority: int,
    max_cost: str | None,
    notification: NotificationSpec | None = None,
) -> str:
    # A notification joins the hash only when given: earlier runs' hashes hold.
    extra = [] if notification is None else [notification.url, notification.secret]
    canonical = json.dumps(
        [workflow_id, version, input, labels, max_concurrency, priority, max_cost, *extra],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _lower(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    """The stricter of two optional ceilings."""
    if a is None:
        return b
    return a if b is None else min(a, b)


def _snapshot(run: RunRecord, steps: list[StepRecord]) -> RunView:
    """A copy of a running run's records that the run no longer changes (JSON
    values are never changed in place, so they are shared)."""
    return RunView(_copy_record(run), [_copy_step(step) for step in steps])


def _copy_step(step: StepRecord) -> StepRecord:
    copied = _copy_record(step)
    copied.attempts = [_copy_record(attempt) for attempt in step.attempts]
    return copied


def _copy_record(record: R) -> R:
    copied = copy.copy(record)
    copied.usage = record.usage.copy()
    return copied
