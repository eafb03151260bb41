"""What governance needs from storage: runtime changes of quotas and budgets,
and settled spend. Governance owns this contract; backends under
`podium.store` implement it.

Spend is submitted without a commit of its own: it rides the commits of the
run store of the same backend (the engine's RunStore), so that a call's spend
is durable with the run state that records it.

A reservation is a row keyed by its id, made durable (`commit`) before the
provider call goes out; settling deletes the row in the same transaction that
adds the spend, so that after a crash every row still there is a call whose
bill is unknown (charged at its worst case at the next start). Rows keyed by
id, with their run, scopes and amount, serve several servers on one database
as well as one.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Protocol

from podium.core.model import DEFAULT_TENANT

__all__ = ["GovernanceStore", "OpenReservation", "OverrideKind", "ReservationRow", "SpendRow"]

OverrideKind = Literal["quotas", "budgets", "alerts"]
# (scope_kind, scope_value, UTC day "YYYY-MM-DD", spent, calls)
SpendRow = tuple[str, str, str, Decimal, int]
# (id, run_id, amount, body): the body is governance's own (OpenReservation's other fields).
ReservationRow = tuple[str, str, Decimal, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class OpenReservation:
    """A reservation as stored: what a call may cost at worst, where it is
    charged (budget keys), and who made it (for the run event that charges it)."""

    id: str
    run_id: str
    amount: Decimal
    # (budget name, period key) of every budget the call reserved in.
    keys: tuple[tuple[str, str], ...]
    provider: str
    model: str
    agent: str = ""
    workflow: str = ""
    step_id: str = ""
    attempt: int = 0
    item: int = -1
    tenant: str = DEFAULT_TENANT

    def row(self) -> ReservationRow:
        body = {
            "keys": [list(key) for key in self.keys],
            "provider": self.provider,
            "model": self.model,
            "agent": self.agent,
            "workflow": self.workflow,
            "step_id": self.step_id,
            "attempt": self.attempt,
            "item": self.item,
            "tenant": self.tenant,
        }
        return (self.id, self.run_id, self.amount, body)

    @classmethod
    def from_row(cls, row: ReservationRow) -> OpenReservation:
        reservation_id, run_id, amount, body = row
        return cls(
            id=reservation_id,
            run_id=run_id,
            amount=amount,
            keys=tuple((str(key[0]), str(key[1])) for key in body.get("keys", [])),
            provider=str(body.get("provider", "")),
            model=str(body.get("model", "")),
            agent=str(body.get("agent", "")),
            workflow=str(body.get("workflow", "")),
            step_id=str(body.get("step_id", "")),
            attempt=int(body.get("attempt", 0)),
            item=int(body.get("item", -1)),
            tenant=str(body.get("tenant", DEFAULT_TENANT)),
        )


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

    def add_spend(
        self, tenant: str, scopes: list[tuple[str, str]], day: str, amount: Decimal
    ) -> None:
        """Adds one settled call of a tenant to each (scope_kind, scope_value) on a UTC
        day: spend is kept per tenant."""
        ...

    async def budget_spend(self) -> dict[tuple[str, str], Decimal]:
        """Settled spend per (budget, period_key)."""
        ...

    async def spend(
        self, tenant: str, scope_kind: str = "", scope_value: str = "", since_day: str = ""
    ) -> list[SpendRow]:
        """A tenant's spend rows, oldest day first, filtered."""
        ...

    def open_reservation(
        self, reservation_id: str, run_id: str, amount: Decimal, body: dict[str, Any]
    ) -> None:
        """Stores a reservation; rides the next commit (await `commit`)."""
        ...

    def close_reservation(self, reservation_id: str) -> None:
        """Deletes a reservation (settled or released); rides the next commit."""
        ...

    async def reserve_within(
        self,
        reservation_id: str,
        run_id: str,
        amount: Decimal,
        body: dict[str, Any],
        limits: list[tuple[str, str, Decimal]],
    ) -> tuple[str, Decimal, Decimal] | None:
        """Stores a reservation, durable on return, in one transaction that checks each
        (budget, period_key, limit): settled spend plus the open reservations holding
        that key (their body's `keys`) plus `amount` within the limit, atomic against
        every store on the same database (what cluster mode reserves through). If one
        cannot hold it, stores nothing and returns (budget, spent, reserved) of the
        first."""
        ...

    async def take_shared(
        self,
        takes: list[tuple[str, float, float, float]],
        leases: list[tuple[str, int]],
        lease_id: str,
        now: float,
    ) -> float | None:
        """Cluster mode: in one transaction, all or nothing, takes `amount` from each
        shared rate bucket (name, amount, rate_per_second, capacity), refilled at its
        rate since its last change and created full, and one lease of each
        (name, max_concurrent) under `lease_id`, counting only the leases of servers
        whose lease is live. None when taken; else seconds to wait before trying
        again (inf: the amount exceeds a capacity; 0: a lease blocks, try again
        after a poll). `now`: wall-clock seconds."""
        ...

    def adjust_shared(self, name: str, amount: float, capacity: float) -> None:
        """Gives `amount` back to a shared bucket (a negative amount debits it), up to
        its capacity; rides the next commit."""
        ...

    def release_shared(self, lease_id: str) -> None:
        """Drops the leases taken under `lease_id`; rides the next commit."""
        ...

    def publish_breaker(self, tenant: str, name: str, state: str, changed_time: float) -> None:
        """Cluster mode: a breaker's state (OPEN or CLOSED) as this server decided it
        at `changed_time` (wall clock), for the others; clears its probe claim;
        rides the next commit."""
        ...

    async def breaker_states(self) -> list[tuple[str, str, str, float]]:
        """Cluster mode: every published breaker's last change (tenant, name, state,
        changed_time)."""
        ...

    async def claim_probe(
        self, tenant: str, name: str, changed_time: float, now: float, hold: float
    ) -> bool:
        """Cluster mode: takes the probe of a breaker OPEN since `changed_time` for
        this server until `now + hold`; durable on return. True if taken, or if no
        server published the breaker (its probe is local); False if another server
        holds the probe or the breaker changed since."""
        ...

    async def open_reservations(self) -> list[ReservationRow]:
        """The reservations never closed: calls in flight when a server stopped."""
        ...

    async def commit(self) -> None:
        """Returns once everything submitted so far is durable."""
        ...

    async def note_start(self) -> bool:
        """Records that a server starts on this store; True if one had before."""
        ...
