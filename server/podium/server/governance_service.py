"""ControlService's governance RPCs: translation only."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import grpc

from podium.core.errors import FieldViolation, InvalidArgument, NotFound
from podium.engine.engine import Engine
from podium.governance.policy import PolicyError
from podium.server import governance_translate as gt
from podium.server.status import unary
from podium.server.translate import money
from podium.v1 import control_service_pb2 as pb

Context = grpc.aio.ServicerContext[Any, Any]


def _invalid(error: PolicyError) -> InvalidArgument:
    return InvalidArgument(
        str(error), [FieldViolation(error.field, error.reason)], reason="INVALID_POLICY"
    )


class GovernanceRpcs:
    """Mixed into ControlService."""

    _engine: Engine

    @unary
    async def ListQuotas(
        self, request: pb.ListQuotasRequest, context: Context
    ) -> pb.ListQuotasResponse:
        governance = self._engine.governance
        snapshot = governance.quotas.snapshot()
        rates = {view.name: view for view in snapshot.rates}
        leases = {view.name: view for view in snapshot.leases}
        return pb.ListQuotasResponse(
            quotas=[
                gt.quota_message(q, rates.get(q.name), leases.get(q.name))
                for q in governance.quota_policies()
            ]
        )

    @unary
    async def UpdateQuota(
        self, request: pb.UpdateQuotaRequest, context: Context
    ) -> pb.UpdateQuotaResponse:
        try:
            quota = await self._engine.governance.put_quota(gt.quota_data(request.quota))
        except PolicyError as error:
            raise _invalid(error) from None
        return pb.UpdateQuotaResponse(quota=gt.quota_message(quota))

    @unary
    async def DeleteQuota(
        self, request: pb.DeleteQuotaRequest, context: Context
    ) -> pb.DeleteQuotaResponse:
        if not await self._engine.governance.delete_quota(request.name):
            raise NotFound(f"quota {request.name!r} not found", reason="QUOTA_NOT_FOUND")
        return pb.DeleteQuotaResponse()

    @unary
    async def ListBudgets(
        self, request: pb.ListBudgetsRequest, context: Context
    ) -> pb.ListBudgetsResponse:
        governance = self._engine.governance
        views = {view.name: view for view in governance.ledger.snapshot()}
        return pb.ListBudgetsResponse(
            budgets=[gt.budget_message(b, views.get(b.name)) for b in governance.budget_policies()]
        )

    @unary
    async def UpdateBudget(
        self, request: pb.UpdateBudgetRequest, context: Context
    ) -> pb.UpdateBudgetResponse:
        governance = self._engine.governance
        try:
            budget = await governance.put_budget(gt.budget_data(request.budget))
        except PolicyError as error:
            raise _invalid(error) from None
        views = {view.name: view for view in governance.ledger.snapshot()}
        return pb.UpdateBudgetResponse(budget=gt.budget_message(budget, views.get(budget.name)))

    @unary
    async def DeleteBudget(
        self, request: pb.DeleteBudgetRequest, context: Context
    ) -> pb.DeleteBudgetResponse:
        if not await self._engine.governance.delete_budget(request.name):
            raise NotFound(f"budget {request.name!r} not found", reason="BUDGET_NOT_FOUND")
        return pb.DeleteBudgetResponse()

    @unary
    async def GetSpend(self, request: pb.GetSpendRequest, context: Context) -> pb.GetSpendResponse:
        by_month = gt.period_name(request.period) == "month"
        since = request.since if not by_month or not request.since else request.since + "-01"
        rows = await self._engine.governance.spend(
            gt.scope_kind_name(request.scope_kind), request.scope_value, since
        )
        totals: dict[tuple[str, str, str], tuple[Decimal, int]] = {}
        for kind, value, day, spent, calls in rows:
            key = (kind, value, day[:7] if by_month else day)
            before = totals.get(key, (Decimal(0), 0))
            totals[key] = (before[0] + spent, before[1] + calls)
        entries = [gt.spend_entry(k, v, p, s, c) for (k, v, p), (s, c) in totals.items()]
        server_total = sum((s for (k, _, _), (s, _) in totals.items() if k == "server"), Decimal(0))
        total = (
            server_total
            if any(k == "server" for k, _, _ in totals)
            else sum((s for s, _ in totals.values()), Decimal(0))
        )
        return pb.GetSpendResponse(entries=entries, total=money(total))

    @unary
    async def ListBreakers(
        self, request: pb.ListBreakersRequest, context: Context
    ) -> pb.ListBreakersResponse:
        governance = self._engine.governance
        now = governance.clock.now()
        return pb.ListBreakersResponse(
            breakers=[gt.breaker_message(view, now) for view in governance.breakers.list()]
        )

    @unary
    async def ResetBreaker(
        self, request: pb.ResetBreakerRequest, context: Context
    ) -> pb.ResetBreakerResponse:
        governance = self._engine.governance
        if not governance.breakers.reset(request.name):
            raise NotFound(f"breaker {request.name!r} not found", reason="BREAKER_NOT_FOUND")
        breaker = governance.breakers.breaker(request.name)
        return pb.ResetBreakerResponse(
            breaker=gt.breaker_message(breaker.view(), governance.clock.now())
        )
