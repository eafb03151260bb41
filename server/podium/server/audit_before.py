"""What an audited mutation is about to change, read just before it runs:
the `before` of its audit record. Quotas, budgets and breakers by name; a
run's state (never its data) for CancelRun, DeleteRun, ResolveApproval,
PauseRun and ResumeRun."""

from __future__ import annotations

from typing import Any

from google.protobuf import message

from podium.core.errors import PodiumError
from podium.engine.engine import Engine
from podium.governance.service import Governance
from podium.server import governance_translate as gt
from podium.server import requests, translate
from podium.server.caller import current_caller
from podium.v1 import control_service_pb2, run_pb2


class BeforeReader:
    def __init__(self, engine: Engine, governance: Governance) -> None:
        self._engine = engine
        self._governance = governance

    async def read(self, method: str, request: Any) -> message.Message | None:
        """None when the mutation changes nothing that exists yet (or the
        request names nothing readable)."""
        name = method.rsplit("/", 1)[-1]
        governance = self._governance
        if name in ("UpdateQuota", "DeleteQuota"):
            quota = request.quota.name if name == "UpdateQuota" else request.name
            for status in governance.quota_statuses():
                if status.policy.name == quota:
                    return gt.quota_message(status.policy, status.rate, status.lease)
            return None
        if name in ("UpdateBudget", "DeleteBudget"):
            budget = request.budget.name if name == "UpdateBudget" else request.name
            for budget_status in governance.budget_statuses():
                if budget_status.policy.name == budget:
                    return gt.budget_message(budget_status.policy, budget_status.view)
            return None
        if name == "UpdateAlerts":
            alerts = governance.alerts_policy()
            return None if alerts is None else gt.alerts_message(alerts)
        if name == "ResetBreaker":
            now = governance.clock.now()
            for view in governance.breakers.list(current_caller().tenant):
                if view.name == request.name:
                    return control_service_pb2.Breaker(
                        name=view.name, state=gt.breaker_message(view, now).state
                    )
            return None
        if name in ("CancelRun", "DeleteRun", "ResolveApproval", "PauseRun", "ResumeRun"):
            return await self._run_state(request.run if name == "ResolveApproval" else request.name)
        return None

    async def _run_state(self, run_name: str) -> message.Message | None:
        try:
            view = await self._engine.get_run(
                requests.run_id(run_name), tenant=current_caller().tenant
            )
        except (PodiumError, ValueError):
            return None
        return run_pb2.Run(
            name=translate.run_name(view.run.run_id),
            state=run_pb2.RunState.ValueType(int(view.run.state)),
        )
