"""The per-RPC access table: which roles may call each method, and which
methods change something (those are audited). docs/security.md shows the same
table; tests/api/test_access_matrix.py calls every RPC with every role.

Methods are named as gRPC names them ("/podium.v1.ExecutionService/StartRun").
A method missing from the table is refused to everyone but an admin, so a new
RPC is never open by accident (and a test fails until it is listed here)."""

from __future__ import annotations

from dataclasses import dataclass

from podium.identity.principal import Role

ADMIN, OPERATOR, DEVELOPER, VIEWER, APPROVER, WORKER = (
    Role.ADMIN,
    Role.OPERATOR,
    Role.DEVELOPER,
    Role.VIEWER,
    Role.APPROVER,
    Role.WORKER,
)


@dataclass(frozen=True)
class Access:
    roles: frozenset[Role]
    # A mutation is recorded in the audit trail.
    mutation: bool = False


def _allow(*roles: Role, mutation: bool = False) -> Access:
    return Access(frozenset({ADMIN, *roles}), mutation)


_READ = _allow(OPERATOR, DEVELOPER, VIEWER)
_ADMIN_ONLY = _allow()

# Services every caller may use without credentials: health checks and reflection.
OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)

_WF = "/podium.v1.WorkflowService/"
_EX = "/podium.v1.ExecutionService/"
_PR = "/podium.v1.ProgressService/"
_CT = "/podium.v1.ControlService/"
_ID = "/podium.v1.IdentityService/"
_WK = "/podium.v1.WorkerService/"
_SC = "/podium.v1.ScheduleService/"

TABLE: dict[str, Access] = {
    _WF + "CreateWorkflow": _allow(DEVELOPER, mutation=True),
    _WF + "GetWorkflow": _READ,
    _WF + "ListWorkflows": _READ,
    _WF + "DeleteWorkflow": _allow(DEVELOPER, mutation=True),
    _WF + "ValidateWorkflow": _allow(DEVELOPER),
    _EX + "StartRun": _allow(OPERATOR, DEVELOPER, mutation=True),
    _EX + "GetRun": _READ,
    _EX + "ListRuns": _READ,
    _EX + "CancelRun": _allow(OPERATOR, DEVELOPER, mutation=True),
    _EX + "PauseRun": _allow(OPERATOR, DEVELOPER, mutation=True),
    _EX + "ResumeRun": _allow(OPERATOR, DEVELOPER, mutation=True),
    _EX + "RerunRun": _allow(OPERATOR, DEVELOPER, mutation=True),
    _EX + "RerunRuns": _allow(OPERATOR, DEVELOPER, mutation=True),
    _EX + "ResolveApproval": _allow(OPERATOR, APPROVER, mutation=True),
    _EX + "DeleteRun": _allow(OPERATOR, DEVELOPER, mutation=True),
    _EX + "SignalRun": _allow(OPERATOR, DEVELOPER, mutation=True),
    # The token is the capability; the role admits the caller, the tenant must be the run's.
    _EX + "CompleteCallback": _allow(OPERATOR, DEVELOPER, APPROVER, mutation=True),
    _PR + "WatchRun": _READ,
    _PR + "WatchRuns": _READ,
    _CT + "ListAgents": _READ,
    _CT + "ListProviders": _READ,
    _CT + "ListPlugins": _READ,
    _CT + "GetSystemStatus": _READ,
    _CT + "ListQuotas": _READ,
    _CT + "UpdateQuota": _allow(mutation=True),
    _CT + "DeleteQuota": _allow(mutation=True),
    _CT + "ListBudgets": _READ,
    _CT + "UpdateBudget": _allow(mutation=True),
    _CT + "DeleteBudget": _allow(mutation=True),
    _CT + "GetSpend": _READ,
    _CT + "ListBreakers": _READ,
    _CT + "ResetBreaker": _allow(OPERATOR, mutation=True),
    _CT + "GetWorkflowInsights": _READ,
    # The URL alerts go to is the operators' business, not every viewer's.
    _CT + "GetAlerts": _allow(OPERATOR),
    _CT + "UpdateAlerts": _allow(mutation=True),
    _ID + "CreateToken": _allow(mutation=True),
    _ID + "ListTokens": _ADMIN_ONLY,
    _ID + "RevokeToken": _allow(mutation=True),
    _ID + "GetCaller": _allow(OPERATOR, DEVELOPER, VIEWER, APPROVER, WORKER),
    _ID + "ListAuditRecords": _ADMIN_ONLY,
    # A worker's session, and its governed calls (each also needs a running
    # attempt's token: the role admits the worker, the token the call).
    _WK + "Connect": _allow(WORKER),
    _WK + "CallModel": _allow(WORKER),
    _WK + "CallTool": _allow(WORKER),
    # A schedule starts runs: who may start runs may schedule them.
    _SC + "CreateSchedule": _allow(OPERATOR, DEVELOPER, mutation=True),
    _SC + "GetSchedule": _READ,
    _SC + "ListSchedules": _READ,
    _SC + "PauseSchedule": _allow(OPERATOR, DEVELOPER, mutation=True),
    _SC + "ResumeSchedule": _allow(OPERATOR, DEVELOPER, mutation=True),
    _SC + "DeleteSchedule": _allow(OPERATOR, DEVELOPER, mutation=True),
    _SC + "TriggerSchedule": _allow(OPERATOR, DEVELOPER, mutation=True),
}


def service_of(method: str) -> str:
    """'/pkg.Service/Method' -> 'pkg.Service'."""
    return method.lstrip("/").split("/", 1)[0]


def is_open(method: str) -> bool:
    return service_of(method) in OPEN_SERVICES


def access_of(method: str) -> Access:
    """The method's entry; an unlisted method is for admins only."""
    return TABLE.get(method, _ADMIN_ONLY)
