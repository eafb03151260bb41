"""Workflow definitions: validation, versions, and compiled plans.

This process is the only writer of workflows (one server per database), so
caching each workflow's latest version is exact, and StartRun needs no read.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Callable

from podium.core.clock import Clock
from podium.core.errors import FieldViolation, InvalidArgument, NotFound
from podium.core.model import DEFAULT_TENANT
from podium.core.spec import WorkflowSpec, WorkflowVersion
from podium.engine import pagination
from podium.engine.ports import WorkflowStore
from podium.engine.validation import Plan, compile_plan
from podium.engine.workers import AgentDeclaration, DeclaredAgent, WorkerPool
from podium.plugins.api import Agent
from podium.plugins.registry import Registry

WORKFLOW_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
PLAN_CACHE_SIZE = 256
# Steps from which a definition is compiled in a worker thread.
LARGE_SPEC_STEPS = 500


class WorkflowCatalog:
    def __init__(
        self,
        store: WorkflowStore,
        registry: Registry,
        clock: Clock,
        workers: WorkerPool | None = None,
        vet: Callable[[str, str, WorkflowSpec], list[FieldViolation]] | None = None,
    ) -> None:
        self._store = store
        # Governance's look at a valid definition (calls no quota could ever admit).
        self._vet = vet
        self._registry = registry
        self._workers = workers
        self._clock = clock
        # Keyed by (tenant, workflow id[, version]): ids are unique within a tenant.
        self._plans: OrderedDict[tuple[str, str, int], Plan] = OrderedDict()
        self._latest: dict[tuple[str, str], WorkflowVersion] = {}

    def validate(self, spec: WorkflowSpec) -> Plan:
        """The plan of a valid spec; raises InvalidArgument. No side effect."""
        return compile_plan(spec, self._registry, self._agent)

    async def validate_aside(self, spec: WorkflowSpec) -> Plan:
        """As `validate`; a large spec compiled in a worker thread. Compiling
        10,000 steps takes the better part of a second of pure Python: in
        slices on the event loop, an RPC that needs several turns of the loop
        waits for a slice at every turn (health took 150 ms), while a thread
        hands the interpreter back to the loop every switch interval."""
        if len(spec.steps) < LARGE_SPEC_STEPS:
            return self.validate(spec)
        return await asyncio.to_thread(self.validate, spec)

    def _stored_agent(self, name: str) -> Agent | None:
        """As `_agent`, for a version that was valid when it was stored: an
        agent neither loaded nor declared now (its workers have not connected
        since a restart) is presumed served by workers; its steps wait for one."""
        agent = self._agent(name)
        if agent is None and self._workers is not None:
            return DeclaredAgent(AgentDeclaration(name))
        return agent

    def _agent(self, name: str) -> Agent | None:
        """An agent loaded in-process, or one a worker declared."""
        agent = self._registry.agent(name)
        if agent is None and self._workers is not None:
            declared = self._workers.declared(name)
            if declared is not None:
                return DeclaredAgent(declared)
        return agent

    async def create(
        self,
        workflow_id: str,
        spec: WorkflowSpec,
        applied: bytes = b"",
        *,
        tenant: str = DEFAULT_TENANT,
    ) -> WorkflowVersion:
        """Stores a new version; durable when this returns. `applied` is the definition as
        the client sent it (see WorkflowVersion.applied)."""
        violations: list[FieldViolation] = []
        if not WORKFLOW_ID.match(workflow_id):
            violations.append(
                FieldViolation("workflow_id", "must match [a-z][a-z0-9-]* (at most 63 characters)")
            )
        try:
            plan = await self.validate_aside(spec)
        except InvalidArgument as error:
            # Report every problem at once, the id's included.
            raise InvalidArgument(
                error.message, violations + error.violations, reason=error.reason
            ) from None
        if violations:
            raise InvalidArgument("invalid workflow_id", violations, reason="INVALID_WORKFLOW")
        await self._check_children(workflow_id, spec, tenant)
        refused = self._vet(workflow_id, tenant, spec) if self._vet is not None else []
        if refused:
            raise InvalidArgument(
                "a step's call is larger than a quota can ever admit",
                refused,
                reason="INVALID_WORKFLOW",
            )
        now = self._clock.now()
        version = await self._store.create_workflow(workflow_id, spec, now, applied, tenant=tenant)
        self._remember_plan((tenant, workflow_id, version), plan)
        created = WorkflowVersion(
            workflow_id=workflow_id,
            version=version,
            spec=spec,
            create_time=now,
            applied=applied,
            tenant=tenant,
        )
        self._latest[(tenant, workflow_id)] = created
        return created

    async def _check_children(self, workflow_id: str, spec: WorkflowSpec, tenant: str) -> None:
        """Child workflows (`workflow` steps) must exist: the workflow itself
        (recursion, bounded by the depth limit) or one of the tenant's. One
        deleted later fails its step when the child would start."""
        violations: list[FieldViolation] = []
        for i, step in enumerate(spec.steps):
            child = step.workflow
            if child is None or child.name == workflow_id:
                continue
            try:
                await self.get(child.name, child.version, tenant=tenant)
            except NotFound as error:
                violations.append(FieldViolation(f"spec.steps[{i}].workflow.name", error.message))
        if violations:
            raise InvalidArgument("unknown child workflow", violations, reason="INVALID_WORKFLOW")

    async def get(
        self, workflow_id: str, version: int = 0, *, tenant: str = DEFAULT_TENANT
    ) -> WorkflowVersion:
        """A tenant's live workflow's version (latest when 0), or NotFound (another
        tenant's workflow of the same id is not seen)."""
        latest = self._latest.get((tenant, workflow_id))
        if latest is not None and version in (0, latest.version):
            return latest
        found = await self._store.get_workflow(workflow_id, version, tenant=tenant)
        if found is None:
            suffix = f" version {version}" if version else ""
            raise NotFound(
                f"workflow {workflow_id!r}{suffix} not found", reason="WORKFLOW_NOT_FOUND"
            )
        if not version:
            self._latest[(tenant, workflow_id)] = found
        return found

    async def pinned(
        self, workflow_id: str, version: int, *, tenant: str = DEFAULT_TENANT
    ) -> WorkflowVersion | None:
        """The version a run is pinned to, even if its workflow was deleted since."""
        return await self._store.get_workflow_version_any(workflow_id, version, tenant=tenant)

    async def delete(self, workflow_id: str, *, tenant: str = DEFAULT_TENANT) -> None:
        self._latest.pop((tenant, workflow_id), None)
        if not await self._store.delete_workflow(workflow_id, tenant=tenant):
            raise NotFound(f"workflow {workflow_id!r} not found", reason="WORKFLOW_NOT_FOUND")

    async def list(
        self, page_size: int, page_token: str, *, tenant: str = DEFAULT_TENANT
    ) -> tuple[list[WorkflowVersion], str]:
        """A page of a tenant's workflows (latest versions, by id) and the next page's
        token."""
        size = pagination.page_size(page_size)
        key = pagination.decode_token(page_token)
        after = ""
        if key is not None:
            if len(key) != 1 or not isinstance(key[0], str):
                raise pagination.bad_token()
            after = key[0]
        found = await self._store.list_workflows(size + 1, after, tenant=tenant)
        page = found[:size]
        token = pagination.encode_token(page[-1].workflow_id) if len(found) > size else ""
        return page, token

    def plan_for(self, workflow: WorkflowVersion) -> Plan:
        """The compiled plan of a stored version (cached)."""
        key = (workflow.tenant, workflow.workflow_id, workflow.version)
        plan = self._plans.get(key)
        if plan is None:
            plan = compile_plan(workflow.spec, self._registry, self._stored_agent)
            self._remember_plan(key, plan)
        return plan

    def _remember_plan(self, key: tuple[str, str, int], plan: Plan) -> None:
        self._plans[key] = plan
        self._plans.move_to_end(key)
        while len(self._plans) > PLAN_CACHE_SIZE:
            self._plans.popitem(last=False)
