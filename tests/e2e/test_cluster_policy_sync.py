"""Runtime quota and budget changes on one server of a cluster take effect on
the others: two `podium serve --cluster` processes on one database; changes
made through one server's ControlService show in the other's governance (its
ListQuotas / ListBudgets answer from its in-memory quotas and ledger)."""

from __future__ import annotations

from pathlib import Path

import grpc

from podium.testing import Cluster, Stubs, eventually
from podium.v1 import common_pb2, control_service_pb2

C = control_service_pb2


def usd(units: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code="USD", units=units)


async def quotas(stubs: Stubs) -> dict[str, C.Quota]:
    reply = await stubs.control.ListQuotas(C.ListQuotasRequest())
    return {quota.name: quota for quota in reply.quotas}


async def budgets(stubs: Stubs) -> dict[str, C.Budget]:
    reply = await stubs.control.ListBudgets(C.ListBudgetsRequest())
    return {budget.name: budget for budget in reply.budgets}


async def test_quota_and_budget_changes_on_one_server_apply_on_the_other(
    cluster: Cluster, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "quotas:\n"
        "  - {name: file-q, scope: 'provider:simulated', dimension: requests, limit: 10}\n"
        "budgets:\n"
        "  - {name: file-b, scope: server, limit: '5'}\n"
    )
    servers = [cluster.start(name, args=("--policy", str(policy))) for name in ("a", "b")]
    async with (
        grpc.aio.insecure_channel(servers[0].address) as channel_a,
        grpc.aio.insecure_channel(servers[1].address) as channel_b,
    ):
        a, b = Stubs.on(channel_a), Stubs.on(channel_b)
        assert set(await quotas(b)) == {"file-q"}

        await a.control.UpdateQuota(
            C.UpdateQuotaRequest(
                quota=C.Quota(
                    name="runtime-q",
                    scope=C.Scope(kind=C.SCOPE_KIND_PROVIDER, value="simulated"),
                    dimension=C.QUOTA_DIMENSION_CONCURRENCY,
                    limit=3,
                )
            )
        )
        await a.control.DeleteQuota(C.DeleteQuotaRequest(name="file-q"))
        await a.control.UpdateBudget(
            C.UpdateBudgetRequest(
                budget=C.Budget(
                    name="file-b", scope=C.Scope(kind=C.SCOPE_KIND_SERVER), limit=usd(9)
                )
            )
        )

        async def b_sees_the_changes() -> bool:
            listed = await quotas(b)
            return set(listed) == {"runtime-q"} and (await budgets(b))["file-b"].limit == usd(9)

        await eventually(b_sees_the_changes, what="server b applying server a's changes")
        assert (await quotas(b))["runtime-q"].limit == 3
        assert (await quotas(b))["runtime-q"].available == 3

        # The other way round, and a deletion of a budget.
        await b.control.DeleteBudget(C.DeleteBudgetRequest(name="file-b"))
        await b.control.UpdateQuota(
            C.UpdateQuotaRequest(
                quota=C.Quota(
                    name="runtime-q",
                    scope=C.Scope(kind=C.SCOPE_KIND_PROVIDER, value="simulated"),
                    dimension=C.QUOTA_DIMENSION_CONCURRENCY,
                    limit=5,
                )
            )
        )

        async def a_sees_them() -> bool:
            listed = await quotas(a)
            return "runtime-q" in listed and listed["runtime-q"].limit == 5 and not await budgets(a)

        await eventually(a_sees_them, what="server a applying server b's changes")
        # b keeps its own change (its sync does not undo what it stored itself).
        assert (await quotas(b))["runtime-q"].limit == 5
        assert await budgets(b) == {}


async def test_alerts_changed_on_one_server_apply_on_the_other(cluster: Cluster) -> None:
    servers = [cluster.start(name) for name in ("a", "b")]
    async with (
        grpc.aio.insecure_channel(servers[0].address) as channel_a,
        grpc.aio.insecure_channel(servers[1].address) as channel_b,
    ):
        a, b = Stubs.on(channel_a), Stubs.on(channel_b)
        assert not (await b.control.GetAlerts(C.GetAlertsRequest())).HasField("alerts")
        await a.control.UpdateAlerts(
            C.UpdateAlertsRequest(alerts=C.Alerts(kinds=[C.ALERT_KIND_QUOTA_WAIT]))
        )

        async def b_alerts_on_quota_waits() -> bool:
            reply = await b.control.GetAlerts(C.GetAlertsRequest())
            return list(reply.alerts.kinds) == [C.ALERT_KIND_QUOTA_WAIT]

        await eventually(b_alerts_on_quota_waits, what="server b taking server a's alerts")

        await b.control.UpdateAlerts(C.UpdateAlertsRequest())  # off, from the other side

        async def a_is_off() -> bool:
            return not (await a.control.GetAlerts(C.GetAlertsRequest())).HasField("alerts")

        await eventually(a_is_off, what="server a switching alerts off")
