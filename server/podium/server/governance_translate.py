"""Governance proto <-> policy translation (quotas, budgets, spend, breakers)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from google.protobuf import duration_pb2

from podium.governance.breakers import BreakerState, BreakerView
from podium.governance.budgets import BudgetView
from podium.governance.policy import (
    ALERT_KINDS,
    AlertsPolicy,
    BudgetPolicy,
    QuotaPolicy,
    parse_scope,
)
from podium.governance.quotas import LeaseView, RateView
from podium.server.translate import money, money_to_decimal
from podium.v1 import control_service_pb2 as pb

_KINDS = {
    pb.SCOPE_KIND_SERVER: "server",
    pb.SCOPE_KIND_PROVIDER: "provider",
    pb.SCOPE_KIND_MODEL: "model",
    pb.SCOPE_KIND_AGENT: "agent",
    pb.SCOPE_KIND_WORKFLOW: "workflow",
    pb.SCOPE_KIND_TENANT: "tenant",
}
_KINDS_BACK = {name: number for number, name in _KINDS.items()}
_DIMENSIONS = {
    pb.QUOTA_DIMENSION_REQUESTS: "requests",
    pb.QUOTA_DIMENSION_INPUT_TOKENS: "input_tokens",
    pb.QUOTA_DIMENSION_OUTPUT_TOKENS: "output_tokens",
    pb.QUOTA_DIMENSION_TOKENS: "tokens",
    pb.QUOTA_DIMENSION_CONCURRENCY: "concurrency",
}
_DIMENSIONS_BACK = {name: number for number, name in _DIMENSIONS.items()}
_PERIODS = {
    pb.BUDGET_PERIOD_NONE: "none",
    pb.BUDGET_PERIOD_DAY: "day",
    pb.BUDGET_PERIOD_MONTH: "month",
}
_PERIODS_BACK = {name: number for number, name in _PERIODS.items()}
_BREAKERS = {
    BreakerState.CLOSED: pb.BREAKER_STATE_CLOSED,
    BreakerState.OPEN: pb.BREAKER_STATE_OPEN,
    BreakerState.HALF_OPEN: pb.BREAKER_STATE_HALF_OPEN,
}


_ALERT_KINDS = {getattr(pb, f"ALERT_KIND_{kind.upper()}"): kind for kind in ALERT_KINDS}
_ALERT_KINDS_BACK = {kind: number for number, kind in _ALERT_KINDS.items()}


def scope_text(scope: pb.Scope) -> str:
    kind = _KINDS.get(scope.kind, "")
    return "server" if kind == "server" else f"{kind}:{scope.value}"


def scope_message(text: str) -> pb.Scope:
    kind, value = parse_scope(text)
    return pb.Scope(kind=_KINDS_BACK[kind], value=value)


def quota_data(message: pb.Quota) -> dict[str, Any]:
    """A Quota message as policy data (validated by QuotaPolicy)."""
    return {
        "name": message.name,
        "scope": scope_text(message.scope),
        "dimension": _DIMENSIONS.get(message.dimension, "unspecified"),
        "limit": message.limit,
        "burst": message.burst,
        # Unset: a minute; a zero, negative or huge duration is refused by QuotaPolicy.
        **({"window": _seconds(message.window)} if message.HasField("window") else {}),
    }


def _seconds(duration: duration_pb2.Duration) -> float:
    # Not ToTimedelta(): a Duration beyond timedelta's range would raise; the policy
    # refuses whatever is out of its own range, with the field named.
    return duration.seconds + duration.nanos / 1e9


def budget_data(message: pb.Budget) -> dict[str, Any]:
    return {
        "name": message.name,
        "scope": scope_text(message.scope),
        "limit": money_to_decimal(message.limit),
        "period": _PERIODS.get(message.period, "none"),
        "time_zone": message.time_zone or "UTC",
        "warn_fraction": message.warn_fraction or 0.8,
    }


def alerts_data(message: pb.Alerts) -> dict[str, Any]:
    """An Alerts message as policy data (validated by AlertsPolicy, fields named alike)."""
    data: dict[str, Any] = {"url": message.url, "secret": message.secret}
    if message.kinds:
        data["kinds"] = [_ALERT_KINDS.get(kind, "unspecified") for kind in message.kinds]
    if message.budget_thresholds:
        data["budget_thresholds"] = list(message.budget_thresholds)
    for name in ("wait_after", "min_interval"):
        if message.HasField(name):
            data[name] = _seconds(getattr(message, name))
    if message.queue_size:
        data["queue_size"] = message.queue_size
    return data


def alerts_message(policy: AlertsPolicy) -> pb.Alerts:
    message = pb.Alerts(
        url=policy.url,
        secret=policy.secret,
        kinds=[_ALERT_KINDS_BACK[kind] for kind in policy.kinds],
        budget_thresholds=policy.budget_thresholds or [],
        queue_size=policy.queue_size,
    )
    message.wait_after.FromNanoseconds(round(policy.wait_after * 1e9))
    message.min_interval.FromNanoseconds(round(policy.min_interval * 1e9))
    return message


def quota_message(
    policy: QuotaPolicy, rate: RateView | None = None, lease: LeaseView | None = None
) -> pb.Quota:
    message = pb.Quota(
        name=policy.name,
        scope=scope_message(policy.scope),
        dimension=_DIMENSIONS_BACK[policy.dimension],
        limit=policy.limit,
        burst=policy.burst,
    )
    if policy.dimension != "concurrency":
        message.window.FromNanoseconds(round(policy.window * 1e9))
    if rate is not None:
        message.available = rate.available
        if rate.paused_until is not None:
            message.paused_until.FromNanoseconds(int(rate.paused_until * 1e9))
    if lease is not None:
        message.available = lease.max_concurrent - lease.in_use
    return message


def budget_message(policy: BudgetPolicy, view: BudgetView | None) -> pb.Budget:
    message = pb.Budget(
        name=policy.name,
        scope=scope_message(policy.scope),
        limit=money(policy.limit),
        period=_PERIODS_BACK[policy.period],
        time_zone=policy.time_zone,
        warn_fraction=policy.warn_fraction,
    )
    if view is not None:
        message.period_key = view.period_key or "all"
        message.spent.CopyFrom(money(view.spent))
        message.reserved.CopyFrom(money(view.reserved))
    return message


def breaker_message(view: BreakerView, now: float) -> pb.Breaker:
    message = pb.Breaker(
        name=view.name,
        state=_BREAKERS[view.state],
        cause=view.cause,
        last_failure=view.last_failure,
        failures=max(view.consecutive_failures, view.failures_in_window),
        calls=view.calls_in_window,
        tenant=view.tenant,
    )
    if view.retry_in is not None:
        message.half_open_time.FromNanoseconds(int((now + view.retry_in) * 1e9))
    return message


def spend_entry(
    kind: str, value: str, period_key: str, spent: Decimal, calls: int
) -> pb.SpendEntry:
    return pb.SpendEntry(
        scope=pb.Scope(kind=_KINDS_BACK.get(kind, pb.SCOPE_KIND_UNSPECIFIED), value=value),
        period_key=period_key,
        spent=money(spent),
        calls=calls,
    )


def scope_kind_name(number: int) -> str:
    return _KINDS.get(pb.ScopeKind.ValueType(number), "")


def period_name(number: int) -> str:
    return _PERIODS.get(pb.BudgetPeriod.ValueType(number), "none")
