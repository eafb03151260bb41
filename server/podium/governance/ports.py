"""What governance needs from storage: runtime changes of quotas and budgets,
and settled spend. Governance owns this contract; backends under
`podium.store` implement it.

Spend is submitted without a commit of its own: it rides the commits of the
run store of the same backend (the engine's RunStore), so that a call's spend
is durable with the run state that records it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal, Protocol

__all__ = ["GovernanceStore", "OverrideKind", "SpendRow"]

OverrideKind = Literal["quotas", "budgets"]
# (scope_kind, scope_value, UTC day "YYYY-MM-DD", spent, calls)
SpendRow = tuple[str, str, str, Decimal, int]


class GovernanceStore(Protocol):
    async def overrides(self, kind: OverrideKind) -> dict[str, dict[str, Any] | None]:
        """Runtime changes by name; None is a tombstone (deleted at runtime)."""
        ...

    async def save_override(
        self, kind: OverrideKind, name: str, body: dict[str, Any] | None
    ) -> None:
        """Stores a runtime change (None: a tombstone); durable when this returns."""
        ...

    def add_budget_spend(self, budget: str, period_key: str, amount: Decimal) -> None:
        """Adds settled spend to a budget's period; rides the next commit."""
        ...

    def add_spend(self, scopes: list[tuple[str, str]], day: str, amount: Decimal) -> None:
        """Adds one settled call to each (scope_kind, scope_value) on a UTC day."""
        ...

    async def budget_spend(self) -> dict[tuple[str, str], Decimal]:
        """Settled spend per (budget, period_key)."""
        ...

    async def spend(
        self, scope_kind: str = "", scope_value: str = "", since_day: str = ""
    ) -> list[SpendRow]:
        """Spend rows, oldest day first, filtered."""
        ...
