"""Schedules and their fires on SQLite (podium.engine.schedule_store's port).

Schedule changes and claims are transactions of their own on the writer's
connection (BEGIN IMMEDIATE), not riding the group-commit batches: a claim must
know whether it won before the scheduler starts anything, and every server of a
cluster on the file serialises on that write lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from podium.core.model import DEFAULT_TENANT
from podium.core.schedule_model import FireOutcome, FireRecord, ScheduleRecord
from podium.store.schedule_codec import schedule_body, schedule_from_row
from podium.store.sqlite.store import SqliteStore

_COLUMNS = "tenant, schedule_id, body, paused, next_fire"
_FIRE_COLUMNS = "schedule_id, nominal_time, outcome, run_id, time, claimer"


class SqliteScheduleStore:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def _write(self, fn: Callable[..., Any], *args: Any) -> Any:
        # Whatever the engine submitted before is durable first (a run a fire
        # started is in the database before the fire says STARTED).
        await self._store.commit()
        return await self._store.writer._conn.call(_transaction, fn, *args)

    async def put_schedule(self, schedule: ScheduleRecord) -> None:
        await self._write(
            _execute,
            f"INSERT INTO schedules ({_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (tenant, schedule_id) DO UPDATE SET body = excluded.body, "
            "paused = excluded.paused, next_fire = excluded.next_fire",
            (
                schedule.tenant,
                schedule.schedule_id,
                schedule_body(schedule),
                int(schedule.paused),
                schedule.next_fire,
            ),
        )

    async def get_schedule(
        self, schedule_id: str, *, tenant: str = DEFAULT_TENANT
    ) -> ScheduleRecord | None:
        rows = await self._store._fetch(
            f"SELECT {_COLUMNS} FROM schedules WHERE tenant = ? AND schedule_id = ?",
            (tenant, schedule_id),
            schedule_from_row,
        )
        return rows[0] if rows else None

    async def schedule_by_id(self, schedule_id: str) -> ScheduleRecord | None:
        rows = await self._store._fetch(
            f"SELECT {_COLUMNS} FROM schedules WHERE schedule_id = ?",
            (schedule_id,),
            schedule_from_row,
        )
        return rows[0] if rows else None

    async def list_schedules(
        self, limit: int, after_id: str = "", *, tenant: str = DEFAULT_TENANT
    ) -> list[ScheduleRecord]:
        return await self._store._fetch(
            f"SELECT {_COLUMNS} FROM schedules WHERE tenant = ? AND schedule_id > ? "
            "ORDER BY schedule_id LIMIT ?",
            (tenant, after_id, limit),
            schedule_from_row,
        )

    async def delete_schedule(self, schedule_id: str, *, tenant: str = DEFAULT_TENANT) -> bool:
        deleted: bool = await self._write(_delete, tenant, schedule_id)
        return deleted

    async def due_schedules(self, now: float) -> list[ScheduleRecord]:
        return await self._store._fetch(
            f"SELECT {_COLUMNS} FROM schedules WHERE paused = 0 AND next_fire <= ? "
            "ORDER BY next_fire, schedule_id",
            (now,),
            schedule_from_row,
        )

    async def claim_fires(
        self,
        schedule_id: str,
        expected_next: float,
        new_next: float | None,
        fires: list[FireRecord],
    ) -> bool:
        won: bool = await self._write(_claim, schedule_id, expected_next, new_next, fires)
        return won

    async def set_fire(self, fire: FireRecord) -> None:
        await self._write(
            _execute,
            f"INSERT INTO schedule_fires ({_FIRE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (schedule_id, nominal_time) DO UPDATE SET outcome = excluded.outcome, "
            "run_id = excluded.run_id, time = excluded.time, claimer = excluded.claimer",
            _fire_row(fire),
        )

    async def take_fire(self, fire: FireRecord, claimer: str) -> bool:
        taken: bool = await self._write(_take, fire, claimer)
        return taken

    async def fires_of(
        self, schedule_id: str, outcomes: tuple[str, ...] = (), limit: int = 1000
    ) -> list[FireRecord]:
        where = "schedule_id = ?"
        params: list[Any] = [schedule_id]
        if outcomes:
            where += f" AND outcome IN ({', '.join('?' for _ in outcomes)})"
            params.extend(outcomes)
        params.append(limit)
        return await self._store._fetch(
            f"SELECT {_FIRE_COLUMNS} FROM schedule_fires WHERE {where} "
            "ORDER BY nominal_time LIMIT ?",
            params,
            _fire,
        )

    async def open_fires(self) -> list[FireRecord]:
        return await self._store._fetch(
            f"SELECT {_FIRE_COLUMNS} FROM schedule_fires "
            f"WHERE outcome IN ('{FireOutcome.CLAIMED}', '{FireOutcome.BUFFERED}') "
            "ORDER BY nominal_time, schedule_id",
            (),
            _fire,
        )


def _fire_row(fire: FireRecord) -> tuple[Any, ...]:
    return (fire.schedule_id, fire.nominal_time, fire.outcome, fire.run_id, fire.time, fire.claimer)


def _fire(row: Any) -> FireRecord:
    return FireRecord(row[0], float(row[1]), row[2], row[3], float(row[4]), row[5])


def _transaction(conn: sqlite3.Connection, fn: Callable[..., Any], *args: Any) -> Any:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn, *args)
        conn.execute("COMMIT")
        return result
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


def _execute(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> None:
    conn.execute(sql, params)


def _delete(conn: sqlite3.Connection, tenant: str, schedule_id: str) -> bool:
    cursor = conn.execute(
        "DELETE FROM schedules WHERE tenant = ? AND schedule_id = ?", (tenant, schedule_id)
    )
    if cursor.rowcount == 0:
        return False
    conn.execute("DELETE FROM schedule_fires WHERE schedule_id = ?", (schedule_id,))
    return True


def _claim(
    conn: sqlite3.Connection,
    schedule_id: str,
    expected_next: float,
    new_next: float | None,
    fires: list[FireRecord],
) -> bool:
    cursor = conn.execute(
        "UPDATE schedules SET next_fire = ? WHERE schedule_id = ? AND next_fire = ? AND paused = 0",
        (new_next, schedule_id, expected_next),
    )
    if cursor.rowcount != 1:
        return False
    conn.executemany(
        f"INSERT INTO schedule_fires ({_FIRE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (schedule_id, nominal_time) DO NOTHING",
        [_fire_row(fire) for fire in fires],
    )
    return True


def _take(conn: sqlite3.Connection, fire: FireRecord, claimer: str) -> bool:
    cursor = conn.execute(
        "UPDATE schedule_fires SET claimer = ? WHERE schedule_id = ? AND nominal_time = ? "
        "AND outcome = ? AND claimer = ?",
        (claimer, fire.schedule_id, fire.nominal_time, fire.outcome, fire.claimer),
    )
    return cursor.rowcount == 1
