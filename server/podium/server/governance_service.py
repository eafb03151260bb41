"""ControlService's governance RPCs: translation only."""

from __future__ import annotations

import math
from typing import Any

import grpc

from podium.core.errors import FieldViolation, InvalidArgument, NotFound
from podium.governance.policy import PolicyError
from podium.governance.scopes import tenant_scope
from podium.governance.service import Governance
from podium.governance.spend import ReportPeriod
from podium.server import governance_translate as gt
from podium.server.caller import current_caller
from podium.server.status import unary
from podium.server.translate import money
from podium.v1 import control_service_pb2 as pb

Context = grpc.aio.ServicerContext[Any, Any]


def _invalid(error: PolicyError) -> InvalidArgument:
    return InvalidArgument(
        str(error), [FieldViolation(error.field, error.reason)], reason="INVALID_POLICY"
    )


def _require_finite(message: Any, prefix: str, fields: tuple[str, ...]) -> None:
    """NaN and infinities pass proto's double type but no limit means them
    (NaN compares false with everything, so a NaN limit would never bind)."""
    for field in fields:
        number = getattr(message, field)
        if not math.isfinite(number):
            raise InvalidArgument(
                f"{prefix}.{field}: {number} is not a finite number",
                [FieldViolation(f"{prefix}.{field}", f"{number} is not a finite number")],
                reason="INVALID_POLICY",
            )


def _visible(scope: str) -> bool:
    """Admins see every quota and budget (unless acting on one tenant explicitly);
    anyone else only its tenant's own (`tenant:<t>`): a server-wide one's state tells
    of every tenant's calls."""
    caller = current_caller()
    return (caller.is_admin and not caller.acting_for) or scope == tenant_scope(caller.tenant)


class GovernanceRpcs:
    """Mixed into ControlService."""

    _governance: Governance

    @unary
    async def ListQuotas(
        self, request: pb.ListQuotasRequest, context: Context
    ) -> pb.ListQuotasResponse:
        return pb.ListQuotasResponse(
            quotas=[
                gt.quota_message(s.policy, s.rate, s.lease)
                for s in self._governance.quota_statuses()
                if _visible(s.policy.scope)
            ]
        )

    @unary
    async def UpdateQuota(
        self, request: pb.UpdateQuotaRequest, context: Context
    ) -> pb.UpdateQuotaResponse:
        try:
            _require_finite(request.quota, "quota", ("limit", "burst"))
            quota = await self._governance.put_quota(gt.quota_data(request.quota))
        except PolicyError as error:
            raise _invalid(error) from None
        return pb.UpdateQuotaResponse(quota=gt.quota_message(quota))

    @unary
    async def DeleteQuota(
        self, request: pb.DeleteQuotaRequest, context: Context
    ) -> pb.DeleteQuotaResponse:
        if not await self._governance.delete_quota(request.name):
            raise NotFound(f"quota {request.name!r} not found", reason="QUOTA_NOT_FOUND")
        return pb.DeleteQuotaResponse()

    @unary
    async def ListBudgets(
        self, request: pb.ListBudgetsRequest, context: Context
    ) -> pb.ListBudgetsResponse:
        return pb.ListBudgetsResponse(
            budgets=[
                gt.budget_message(s.policy, s.view)
                for s in self._governance.budget_statuses()
                if _visible(s.policy.scope)
            ]
        )

    @unary
    async def UpdateBudget(
        self, request: pb.UpdateBudgetRequest, context: Context
    ) -> pb.UpdateBudgetResponse:
        governance = self._governance
        try:
            _require_finite(request.budget, "budget", ("warn_fraction",))
            budget = await governance.put_budget(gt.budget_data(request.budget))
        except PolicyError as error:
            raise _invalid(error) from None
        status = governance.budget_status(budget)
        return pb.UpdateBudgetResponse(budget=gt.budget_message(status.policy, status.view))

    @unary
    async def DeleteBudget(
        self, request: pb.DeleteBudgetRequest, context: Context
    ) -> pb.DeleteBudgetResponse:
        if not await self._governance.delete_budget(request.name):
            raise NotFound(f"budget {request.name!r} not found", reason="BUDGET_NOT_FOUND")
        return pb.DeleteBudgetResponse()

    @unary
    async def GetAlerts(
        self, request: pb.GetAlertsRequest, context: Context
    ) -> pb.GetAlertsResponse:
        alerts = self._governance.alerts_policy()
        return pb.GetAlertsResponse(alerts=None if alerts is None else gt.alerts_message(alerts))

    @unary
    async def UpdateAlerts(
        self, request: pb.UpdateAlertsRequest, context: Context
    ) -> pb.UpdateAlertsResponse:
        data = gt.alerts_data(request.alerts) if request.HasField("alerts") else None
        try:
            alerts = await self._governance.put_alerts(data)
        except PolicyError as error:
            raise _invalid(error) from None
        return pb.UpdateAlertsResponse(alerts=None if alerts is None else gt.alerts_message(alerts))

    @unary
    async def GetSpend(self, request: pb.GetSpendRequest, context: Context) -> pb.GetSpendResponse:
        period: ReportPeriod = "month" if gt.period_name(request.period) == "month" else "day"
        report = await self._governance.spend_report(
            gt.scope_kind_name(request.scope_kind),
            request.scope_value,
            period,
            request.since,
            tenant=current_caller().tenant,
        )
        return pb.GetSpendResponse(
            entries=[
                gt.spend_entry(e.scope_kind, e.scope_value, e.period_key, e.spent, e.calls)
                for e in report.entries
            ],
            total=money(report.total),
        )

    @unary
    async def ListBreakers(
        self, request: pb.ListBreakersRequest, context: Context
    ) -> pb.ListBreakersResponse:
        governance = self._governance
        now = governance.clock.now()
        caller = current_caller()
        # Admins see every tenant's (unless acting on one); anyone else its own only.
        tenant = None if caller.is_admin and not caller.acting_for else caller.tenant
        return pb.ListBreakersResponse(
            breakers=[gt.breaker_message(view, now) for view in governance.breakers.list(tenant)]
        )

    @unary
    async def ResetBreaker(
        self, request: pb.ResetBreakerRequest, context: Context
    ) -> pb.ResetBreakerResponse:
        governance = self._governance
        tenant = current_caller().tenant
        if not governance.breakers.reset(request.name, tenant):
            known = [view.name for view in governance.breakers.list(tenant)]
            raise NotFound(
                f"breaker {request.name!r} not found; "
                + (f"the breakers now are: {', '.join(known)}" if known else "there are none yet")
                + " (a breaker, named provider:NAME, model:PROVIDER/MODEL or agent:NAME,"
                " exists once a call has gone through it)",
                reason="BREAKER_NOT_FOUND",
            )
        breaker = governance.breakers.breaker(request.name, tenant)
        return pb.ResetBreakerResponse(
            breaker=gt.breaker_message(breaker.view(), governance.clock.now())
        )
