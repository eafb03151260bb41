"""Spend reports: settled spend per scope, summed by UTC day or month."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from podium.governance.ports import SpendRow

ReportPeriod = Literal["day", "month"]
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class SpendEntry:
    scope_kind: str
    scope_value: str
    # "YYYY-MM-DD" by day, "YYYY-MM" by month.
    period_key: str
    spent: Decimal
    calls: int


@dataclass(frozen=True, slots=True)
class SpendReport:
    entries: list[SpendEntry]
    # The server scope's total when it is in the report (every call counts
    # there once); otherwise the sum of the entries shown.
    total: Decimal


def month_start(since: str, period: ReportPeriod) -> str:
    """The first day a report from `since` covers: a month report from
    "2026-11" starts on "2026-11-01"."""
    return since + "-01" if period == "month" and since else since


def spend_report(rows: Iterable[SpendRow], period: ReportPeriod) -> SpendReport:
    """Daily spend rows summed per scope and period, in the rows' order."""
    totals: dict[tuple[str, str, str], tuple[Decimal, int]] = {}
    for kind, value, day, spent, calls in rows:
        key = (kind, value, day[:7] if period == "month" else day)
        before = totals.get(key, (ZERO, 0))
        totals[key] = (before[0] + spent, before[1] + calls)
    entries = [SpendEntry(k, v, p, s, c) for (k, v, p), (s, c) in totals.items()]
    server = [e.spent for e in entries if e.scope_kind == "server"]
    total = sum(server, ZERO) if server else sum((e.spent for e in entries), ZERO)
    return SpendReport(entries, total)
