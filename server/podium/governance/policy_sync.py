"""Cluster mode: quota and budget changes made on another server take effect here.

UpdateQuota / DeleteQuota / UpdateBudget / DeleteBudget (and UpdateAlerts) on any server store a
runtime override (a body, or a tombstone) in the shared database; every server
re-reads the overrides at most every `interval` seconds (a poll of two small
tables, riding the cluster's poll loop) and, when they differ from what it
applies, rebuilds its quotas and budgets as a restart would: the policy file's,
then the overrides. A change is therefore cluster-wide within about `interval`.

Buckets and ledgers are updated in place (QuotaBook.update, BudgetLedger.update),
so what a quota or budget already handed out is kept across a sync.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from podium.governance.policy import BudgetPolicy, QuotaPolicy

log = logging.getLogger("podium.governance")

DEFAULT_INTERVAL = 0.5  # seconds

Overrides = Callable[[str], Awaitable[Mapping[str, dict[str, Any] | None]]]


def with_overrides(
    quotas: list[QuotaPolicy],
    budgets: list[BudgetPolicy],
    quota_overrides: Mapping[str, dict[str, Any] | None],
    budget_overrides: Mapping[str, dict[str, Any] | None],
) -> tuple[dict[str, QuotaPolicy], dict[str, BudgetPolicy]]:
    """The policy file's quotas and budgets with the runtime overrides applied
    (a None body deletes), as `Governance.load` applies them at start-up."""
    merged_quotas = {quota.name: quota for quota in quotas}
    for name, body in quota_overrides.items():
        if body is None:
            merged_quotas.pop(name, None)
        else:
            merged_quotas[name] = QuotaPolicy.model_validate(body)
    merged_budgets = {budget.name: budget for budget in budgets}
    for name, body in budget_overrides.items():
        if body is None:
            merged_budgets.pop(name, None)
        else:
            merged_budgets[name] = BudgetPolicy.model_validate(body)
    return merged_quotas, merged_budgets


class PolicySync:
    """Throttles the re-reading: the cluster poll loop runs every few tens of ms."""

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        if not interval > 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self._last = float("-inf")

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.interval:
            return False
        self._last = now
        return True
