"""Schedules and their fires on PostgreSQL, as podium.store.sqlite.schedule_store
keeps them: changes and claims are transactions of their own (the claim is a
conditional UPDATE of next_fire; of concurrent claimers one updates a row)."""

from __future__ import annotations

from typing import Any

from podium.core.model import DEFAULT_TENANT
from podium.core.schedule_model import FireOutcome, FireRecord, ScheduleRecord
from podium.store.postgres.store import PostgresStore
from podium.store.schedule_codec import schedule_body, schedule_from_row

_COLUMNS = "tenant, schedule_id, body, paused, next_fire"
_FIRE_COLUMNS = "schedule_id, nominal_time, outcome, run_id, time, claimer"
_UPSERT_FIRE = (
    f"INSERT INTO schedule_fires ({_FIRE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) "
    "ON CONFLICT (schedule_id, nominal_time) DO UPDATE SET outcome = EXCLUDED.outcome, "
    "run_id = EXCLUDED.run_id, time = EXCLUDED.time, claimer = EXCLUDED.claimer"
)


class PostgresScheduleStore:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def put_schedule(self, schedule: ScheduleRecord) -> None:
        await self._store.commit()
        await self._store.pool.execute(
            f"INSERT INTO schedules ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (tenant, schedule_id) DO UPDATE SET body = EXCLUDED.body, "
            "paused = EXCLUDED.paused, next_fire = EXCLUDED.next_fire",
            schedule.tenant,
            schedule.schedule_id,
            schedule_body(schedule),
            schedule.paused,
            schedule.next_fire,
        )

    async def get_schedule(
        self, schedule_id: str, *, tenant: str = DEFAULT_TENANT
    ) -> ScheduleRecord | None:
        rows = await self._store.fetch(
            f"SELECT {_COLUMNS} FROM schedules WHERE tenant = $1 AND schedule_id = $2",
            tenant,
            schedule_id,
        )
        return schedule_from_row(rows[0]) if rows else None

    async def schedule_by_id(self, schedule_id: str) -> ScheduleRecord | None:
        rows = await self._store.fetch(
            f"SELECT {_COLUMNS} FROM schedules WHERE schedule_id = $1", schedule_id
        )
        return schedule_from_row(rows[0]) if rows else None

    async def list_schedules(
        self, limit: int, after_id: str = "", *, tenant: str = DEFAULT_TENANT
    ) -> list[ScheduleRecord]:
        rows = await self._store.fetch(
            f"SELECT {_COLUMNS} FROM schedules WHERE tenant = $1 AND schedule_id > $2 "
            'ORDER BY schedule_id COLLATE "C" LIMIT $3',
            tenant,
            after_id,
            limit,
        )
        return [schedule_from_row(row) for row in rows]

    async def delete_schedule(self, schedule_id: str, *, tenant: str = DEFAULT_TENANT) -> bool:
        await self._store.commit()
        async with self._store.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "DELETE FROM schedules WHERE tenant = $1 AND schedule_id = $2",
                tenant,
                schedule_id,
            )
            if status.endswith(" 0"):
                return False
            await conn.execute("DELETE FROM schedule_fires WHERE schedule_id = $1", schedule_id)
            return True

    async def due_schedules(self, now: float) -> list[ScheduleRecord]:
        rows = await self._store.fetch(
            f"SELECT {_COLUMNS} FROM schedules WHERE NOT paused AND next_fire <= $1 "
            "ORDER BY next_fire, schedule_id",
            now,
        )
        return [schedule_from_row(row) for row in rows]

    async def claim_fires(
        self,
        schedule_id: str,
        expected_next: float,
        new_next: float | None,
        fires: list[FireRecord],
    ) -> bool:
        await self._store.commit()
        async with self._store.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "UPDATE schedules SET next_fire = $1 WHERE schedule_id = $2 "
                "AND next_fire = $3 AND NOT paused",
                new_next,
                schedule_id,
                expected_next,
            )
            if status != "UPDATE 1":
                return False
            await conn.executemany(
                f"INSERT INTO schedule_fires ({_FIRE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) "
                "ON CONFLICT (schedule_id, nominal_time) DO NOTHING",
                [_fire_row(fire) for fire in fires],
            )
            return True

    async def set_fire(self, fire: FireRecord) -> None:
        await self._store.commit()
        await self._store.pool.execute(_UPSERT_FIRE, *_fire_row(fire))

    async def take_fire(self, fire: FireRecord, claimer: str) -> bool:
        await self._store.commit()
        status = await self._store.pool.execute(
            "UPDATE schedule_fires SET claimer = $1 WHERE schedule_id = $2 AND nominal_time = $3 "
            "AND outcome = $4 AND claimer = $5",
            claimer,
            fire.schedule_id,
            fire.nominal_time,
            fire.outcome,
            fire.claimer,
        )
        return bool(status == "UPDATE 1")

    async def fires_of(
        self, schedule_id: str, outcomes: tuple[str, ...] = (), limit: int = 1000
    ) -> list[FireRecord]:
        if outcomes:
            rows = await self._store.fetch(
                f"SELECT {_FIRE_COLUMNS} FROM schedule_fires WHERE schedule_id = $1 "
                "AND outcome = ANY($2::text[]) ORDER BY nominal_time LIMIT $3",
                schedule_id,
                list(outcomes),
                limit,
            )
        else:
            rows = await self._store.fetch(
                f"SELECT {_FIRE_COLUMNS} FROM schedule_fires WHERE schedule_id = $1 "
                "ORDER BY nominal_time LIMIT $2",
                schedule_id,
                limit,
            )
        return [_fire(row) for row in rows]

    async def open_fires(self) -> list[FireRecord]:
        rows = await self._store.fetch(
            f"SELECT {_FIRE_COLUMNS} FROM schedule_fires WHERE outcome = ANY($1::text[]) "
            "ORDER BY nominal_time, schedule_id",
            [FireOutcome.CLAIMED, FireOutcome.BUFFERED],
        )
        return [_fire(row) for row in rows]


def _fire_row(fire: FireRecord) -> tuple[Any, ...]:
    return (fire.schedule_id, fire.nominal_time, fire.outcome, fire.run_id, fire.time, fire.claimer)


def _fire(row: Any) -> FireRecord:
    return FireRecord(row[0], float(row[1]), row[2], row[3], float(row[4]), row[5])
