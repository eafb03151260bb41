"""The audit trail through a real server: each mutation recorded once with
the principal that made it, its tenant, resource, request id and outcome;
secrets redacted; refused mutations recorded too; filters and pages; and an
approval's APPROVAL_RESOLVED event names the approver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from podium.identity.principal import Role
from podium.server.security import SecurityConfig
from podium.testing import (
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    serving,
    start_run,
    step_reaches,
    struct,
)
from podium.testing.identity import new_token, stubs_for
from podium.v1 import common_pb2, control_service_pb2, event_pb2, execution_service_pb2, run_pb2
from podium.v1 import identity_service_pb2 as ids

AUTH = SecurityConfig(auth=True)


async def _records(stubs: Stubs, **filters: Any) -> list[ids.AuditRecord]:
    response = await stubs.identity.ListAuditRecords(ids.ListAuditRecordsRequest(**filters))
    return list(response.records)


async def test_each_mutation_is_recorded_with_its_principal(tmp_path: Path) -> None:
    async with serving(str(tmp_path / "p.db"), security=AUTH) as served:
        admin = await new_token(served.server, Role.ADMIN)
        developer = await new_token(served.server, Role.DEVELOPER)
        viewer = await new_token(served.server, Role.VIEWER)
        developer_subject = f"tokens/{developer.split('_')[1]}"
        async with stubs_for(served.address, developer) as as_developer:
            await create_workflow(as_developer, "hello", {"steps": [echo_step("greet")]})
            started_run = await as_developer.executions.StartRun(
                execution_service_pb2.StartRunRequest(
                    workflow="workflows/hello", input=struct({"api_token": "sk-very-secret"})
                ),
                metadata=(("x-request-id", "req-42"),),
            )
            run = started_run.run
            await collect_events(as_developer, run.name)
        async with stubs_for(served.address, viewer) as as_viewer:
            with pytest.raises(grpc.aio.AioRpcError):
                await as_viewer.executions.DeleteRun(
                    execution_service_pb2.DeleteRunRequest(name=run.name)
                )
            await as_viewer.executions.GetRun(execution_service_pb2.GetRunRequest(name=run.name))
        async with stubs_for(served.address, admin) as as_admin:
            await as_admin.control.UpdateBudget(
                control_service_pb2.UpdateBudgetRequest(
                    budget=control_service_pb2.Budget(
                        name="cap",
                        scope=control_service_pb2.Scope(kind=control_service_pb2.SCOPE_KIND_SERVER),
                        limit=common_pb2.Money(currency_code="USD", units=5),
                        period=control_service_pb2.BUDGET_PERIOD_NONE,
                    )
                )
            )
            records = await _records(as_admin)
            methods = [r.method.rsplit("/", 1)[-1] for r in records]
            assert methods == ["UpdateBudget", "DeleteRun", "StartRun", "CreateWorkflow"]
            budget, denied, started, created = records
            assert budget.resource == "budgets/cap" and budget.code == "OK"
            assert budget.after.fields["budget"].struct_value.fields["name"].string_value == "cap"
            assert not budget.HasField("before")  # there was no such budget
            assert denied.code == "PERMISSION_DENIED" and denied.resource == run.name
            assert denied.subject == f"tokens/{viewer.split('_')[1]}"
            assert (started.subject, started.tenant) == (developer_subject, "default")
            assert started.resource == run.name and started.request_id == "req-42"
            assert started.request["input"] == "[redacted]"
            # The run as it was made, without its steps.
            recorded_run = json_format.MessageToDict(started.after)["run"]
            assert recorded_run["name"] == run.name and "steps" not in recorded_run
            assert "sk-very-secret" not in str(records)
            assert created.resource == "workflows/hello" and created.code == "OK"
            assert records[0].time.ToSeconds() >= records[-1].time.ToSeconds()

            mine = await _records(as_admin, subject=developer_subject)
            assert [r.method.rsplit("/", 1)[-1] for r in mine] == ["StartRun", "CreateWorkflow"]
            by_method = await _records(as_admin, method="StartRun")
            assert [r.name for r in by_method] == [started.name]
            by_resource = await _records(as_admin, resource=run.name)
            assert {r.name for r in by_resource} == {started.name, denied.name}

            first = await as_admin.identity.ListAuditRecords(
                ids.ListAuditRecordsRequest(page_size=3)
            )
            rest = await as_admin.identity.ListAuditRecords(
                ids.ListAuditRecordsRequest(page_size=3, page_token=first.next_page_token)
            )
            assert [r.name for r in (*first.records, *rest.records)] == [r.name for r in records]
            assert not rest.next_page_token
            raised = control_service_pb2.Budget(
                name="cap",
                scope=control_service_pb2.Scope(kind=control_service_pb2.SCOPE_KIND_SERVER),
                limit=common_pb2.Money(currency_code="USD", units=9),
                period=control_service_pb2.BUDGET_PERIOD_NONE,
            )
            await as_admin.control.UpdateBudget(
                control_service_pb2.UpdateBudgetRequest(budget=raised)
            )
            await as_admin.executions.DeleteRun(
                execution_service_pb2.DeleteRunRequest(name=run.name)
            )
            deleted, changed = await _records(as_admin, page_size=2)
            limit_before = changed.before.fields["limit"].struct_value.fields["units"]
            limit_after = changed.after.fields["budget"].struct_value.fields["limit"]
            assert (
                limit_before.string_value,
                limit_after.struct_value.fields["units"].string_value,
            ) == ("5", "9")
            assert deleted.before.fields["state"].string_value == "RUN_STATE_SUCCEEDED"
            assert deleted.resource == run.name and deleted.code == "OK"
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await as_admin.identity.ListAuditRecords(
                    ids.ListAuditRecordsRequest(page_token="nope")
                )
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_an_approval_names_its_approver(tmp_path: Path) -> None:
    spec = {
        "steps": [
            {"id": "gate", "approval": {"prompt": "ok?"}},
            echo_step("after", "gate"),
        ]
    }
    async with serving(str(tmp_path / "p.db"), security=AUTH) as served:
        developer = await new_token(served.server, Role.DEVELOPER)
        approver = await new_token(served.server, Role.APPROVER)
        async with stubs_for(served.address, developer) as as_developer:
            await create_workflow(as_developer, "gated", spec)
            run = await start_run(as_developer, "gated")
            await step_reaches(as_developer, run.name, "gate", run_pb2.STEP_STATE_WAITING)
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await as_developer.executions.ResolveApproval(
                    execution_service_pb2.ResolveApprovalRequest(
                        run=run.name, step_id="gate", decision=event_pb2.APPROVAL_DECISION_APPROVE
                    )
                )
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
            async with stubs_for(served.address, approver) as as_approver:
                await as_approver.executions.ResolveApproval(
                    execution_service_pb2.ResolveApprovalRequest(
                        run=run.name, step_id="gate", decision=event_pb2.APPROVAL_DECISION_APPROVE
                    )
                )
            events = await collect_events(as_developer, run.name)
        resolved = [e for e in events if e.type == event_pb2.RUN_EVENT_TYPE_APPROVAL_RESOLVED]
        assert [e.actor for e in resolved] == [f"tokens/{approver.split('_')[1]}"]
        assert events[-1].type == event_pb2.RUN_EVENT_TYPE_RUN_SUCCEEDED
