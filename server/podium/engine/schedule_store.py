"""What the scheduler needs from storage: schedules and their claimed fires.

A fire is claimed by moving a schedule's `next_fire` forward with a conditional
write (only if it still holds the value the claimer read) that records the
claimed nominal times in the same transaction. Of several servers on one
database exactly one wins each claim and records itself as the fires'
claimer; only the claimer handles them while its lease lives. A server killed
after its claim leaves the fire recorded as CLAIMED; the next server to run
the scheduler (it, restarted, or a survivor once the lease has expired) takes
it over with a conditional write and handles it like a late fire (the run's
request id is derived from the fire, so a start is never doubled).
"""

from __future__ import annotations

from typing import Protocol

from podium.core.model import DEFAULT_TENANT
from podium.core.schedule_model import FireRecord, ScheduleRecord

__all__ = ["ScheduleStore"]


class ScheduleStore(Protocol):
    async def put_schedule(self, schedule: ScheduleRecord) -> None:
        """Creates or replaces a schedule; durable when this returns."""
        ...

    async def get_schedule(
        self, schedule_id: str, *, tenant: str = DEFAULT_TENANT
    ) -> ScheduleRecord | None: ...

    async def schedule_by_id(self, schedule_id: str) -> ScheduleRecord | None:
        """A schedule of any tenant (ids are unique across tenants)."""
        ...

    async def list_schedules(
        self, limit: int, after_id: str = "", *, tenant: str = DEFAULT_TENANT
    ) -> list[ScheduleRecord]:
        """A tenant's schedules by id, after `after_id`."""
        ...

    async def delete_schedule(self, schedule_id: str, *, tenant: str = DEFAULT_TENANT) -> bool:
        """Deletes a schedule and its fires; whether it existed."""
        ...

    async def due_schedules(self, now: float) -> list[ScheduleRecord]:
        """Every tenant's unpaused schedules whose next_fire <= now, soonest first."""
        ...

    async def claim_fires(
        self,
        schedule_id: str,
        expected_next: float,
        new_next: float | None,
        fires: list[FireRecord],
    ) -> bool:
        """Atomically: if the schedule's next_fire is still `expected_next`, set it to
        `new_next` and record `fires` (a fire already recorded is left as it is).
        Whether this call won; durable when it returns True."""
        ...

    async def set_fire(self, fire: FireRecord) -> None:
        """Records a fire's new outcome (and run); durable when this returns."""
        ...

    async def take_fire(self, fire: FireRecord, claimer: str) -> bool:
        """Atomically: if `fire` still has its outcome and its claimer, make `claimer`
        its claimer (a survivor adopting a dead server's fire); whether this call did."""
        ...

    async def fires_of(
        self, schedule_id: str, outcomes: tuple[str, ...] = (), limit: int = 1000
    ) -> list[FireRecord]:
        """A schedule's fires, oldest nominal time first, of `outcomes` (all if empty)."""
        ...

    async def open_fires(self) -> list[FireRecord]:
        """Every schedule's CLAIMED and BUFFERED fires, oldest first."""
        ...
