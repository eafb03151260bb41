"""The SQLite backend of the engine's RelayStore port: worker presence and
relayed tasks of `podium serve --cluster` processes sharing one database file.

Writes are short transactions of their own on the writer's connection (BEGIN
IMMEDIATE: one writer at a time across processes), durable on return; reads go
through the reader's connection and see committed data only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Mapping
from typing import Any

from podium.core.relay_model import (
    AdoptedTask,
    PendingTask,
    RelayCall,
    RelayStatus,
    RelayTask,
    WorkerOffer,
)
from podium.store import codec
from podium.store.sqlite.cluster import _transaction
from podium.store.sqlite.fence import RunFence
from podium.store.sqlite.store import SqliteStore

# At most this many ids per IN (...) list (SQLite's variable limit is higher).
_CHUNK = 500
_INTERRUPTED = json.dumps({"interrupted": "the server holding the worker restarted"})


class SqliteRelay:
    """RelayStore (podium.engine.relay_store) over a SqliteStore opened with a server id."""

    def __init__(self, store: SqliteStore) -> None:
        if store.fence is None:
            raise ValueError("the store was not opened in cluster mode (no server id)")
        self._store = store
        self._fence: RunFence = store.fence

    @property
    def server_id(self) -> str:
        return self._fence.server_id

    def held_epoch(self, run_id: str) -> int | None:
        return self._fence.owned.get(run_id)

    def _write(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._store.writer._conn.call(_transaction, fn, *args)

    # -- presence ----------------------------------------------------------------

    async def set_offers(
        self, offers: Collection[WorkerOffer], declarations: Mapping[str, Mapping[str, Any]]
    ) -> None:
        rows = sorted(
            {
                (o.queue, o.agent, o.tenant or "", codec.dumps(dict(declarations[o.agent])))
                for o in offers
            }
        )
        await self._write(_set_offers, self.server_id, rows)

    async def declarations_elsewhere(self, now: float) -> dict[str, Mapping[str, Any]]:
        rows = await self._store._fetchall(
            "SELECT w.agent, MIN(w.declaration) FROM cluster_workers w "
            "JOIN cluster_servers s ON s.server_id = w.server_id "
            "WHERE s.expire_time >= ? AND w.server_id != ? GROUP BY w.agent",
            (now, self.server_id),
        )
        return {row[0]: json.loads(row[1]) for row in rows}

    async def offers_elsewhere(self, now: float) -> dict[str, list[WorkerOffer]]:
        rows = await self._store._fetchall(
            "SELECT w.server_id, w.queue, w.agent, w.tenant FROM cluster_workers w "
            "JOIN cluster_servers s ON s.server_id = w.server_id "
            "WHERE s.expire_time >= ? AND w.server_id != ? "
            "ORDER BY w.server_id, w.queue, w.agent, w.tenant",
            (now, self.server_id),
        )
        found: dict[str, list[WorkerOffer]] = {}
        for server, queue, agent, tenant in rows:
            found.setdefault(server, []).append(WorkerOffer(queue, agent, tenant or None))
        return found

    # -- the owner's side ------------------------------------------------------------

    async def post(self, task: RelayTask, now: float) -> int:
        task_id: int = await self._write(_post, self.server_id, task, now)
        return task_id

    async def statuses(self, task_ids: Collection[int], now: float) -> dict[int, RelayStatus]:
        ids = list(task_ids)
        found: dict[int, RelayStatus] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ", ".join("?" for _ in chunk)
            rows = await self._store._fetchall(
                "SELECT t.id, t.state, t.epoch, t.holder, "
                "COALESCE(s.expire_time >= ?, 0), t.cancel, t.outcome "
                "FROM relay_tasks t LEFT JOIN cluster_servers s ON s.server_id = t.holder "
                f"WHERE t.id IN ({marks})",
                (now, *chunk),
            )
            for row in rows:
                found[int(row[0])] = RelayStatus(
                    int(row[0]),
                    row[1],
                    int(row[2]),
                    row[3],
                    bool(row[4]),
                    bool(row[5]),
                    codec.loads_optional(row[6]),
                )
        return found

    async def cancel(self, task_id: int) -> None:
        await self._write(
            _execute,
            "UPDATE relay_tasks SET cancel = 1 WHERE id = ? AND owner = ?",
            (task_id, self.server_id),
        )

    async def withdraw(self, task_id: int) -> bool:
        removed: int = await self._write(
            _execute,
            "DELETE FROM relay_tasks WHERE id = ? AND owner = ? AND state = 'PENDING'",
            (task_id, self.server_id),
        )
        return removed == 1

    async def adopt(self, run_ids: Collection[str]) -> list[AdoptedTask]:
        epochs = {
            run_id: self._fence.owned[run_id] for run_id in run_ids if run_id in self._fence.owned
        }
        if not epochs:
            return []
        adopted: list[AdoptedTask] = await self._write(_adopt, self.server_id, epochs)
        return adopted

    async def forget_run(self, run_id: str) -> None:
        await self._write(_forget_run, run_id, self.server_id)

    # -- the holder's side -----------------------------------------------------------

    async def pending(self, offers: Collection[WorkerOffer], limit: int) -> list[PendingTask]:
        agents = sorted({offer.agent for offer in offers})
        if not agents or limit <= 0:
            return []
        marks = ", ".join("?" for _ in agents)
        rows = await self._store._fetchall(
            "SELECT id, owner, run_id, step_id, item, attempt, epoch, queue, agent, tenant, "
            f"payload FROM relay_tasks WHERE state = 'PENDING' AND agent IN ({marks}) "
            "ORDER BY id",
            agents,
        )
        found = []
        for row in rows:
            task = RelayTask(
                row[2],
                row[3],
                int(row[4]),
                int(row[5]),
                int(row[6]),
                row[7],
                row[8],
                row[9],
                json.loads(row[10]),
            )
            if any(offer.takes(task.queue, task.agent, task.tenant) for offer in offers):
                found.append(PendingTask(int(row[0]), row[1], task))
                if len(found) == limit:
                    break
        return found

    async def claim(self, task_id: int, now: float) -> bool:
        claimed: int = await self._write(
            _execute,
            "UPDATE relay_tasks SET state = 'CLAIMED', holder = ?, claim_time = ? "
            "WHERE id = ? AND state = 'PENDING'",
            (self.server_id, now, task_id),
        )
        return claimed == 1

    async def cancelled(self, task_ids: Collection[int]) -> set[int]:
        ids = list(task_ids)
        live: set[int] = set()
        flagged: set[int] = set()
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ", ".join("?" for _ in chunk)
            rows = await self._store._fetchall(
                f"SELECT id, cancel FROM relay_tasks WHERE id IN ({marks}) AND holder = ?",
                (*chunk, self.server_id),
            )
            for task_id, cancel in rows:
                live.add(int(task_id))
                if cancel:
                    flagged.add(int(task_id))
        return flagged | (set(ids) - live)

    async def finish(self, task_id: int, outcome: Mapping[str, Any]) -> bool:
        done: int = await self._write(
            _execute,
            "UPDATE relay_tasks SET state = 'DONE', outcome = ? "
            "WHERE id = ? AND holder = ? AND state = 'CLAIMED'",
            (codec.dumps(dict(outcome)), task_id, self.server_id),
        )
        return done == 1

    async def remove(self, task_id: int) -> None:
        await self._write(_remove, task_id)

    async def post_call(self, task_id: int, kind: str, request: bytes, now: float) -> int:
        call_id: int = await self._write(_post_call, task_id, kind, request, now)
        return call_id

    async def open_calls(self, task_ids: Collection[int]) -> list[RelayCall]:
        ids = list(task_ids)
        calls: list[RelayCall] = []
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ", ".join("?" for _ in chunk)
            rows = await self._store._fetchall(
                "SELECT c.id, c.task_id, c.kind, c.request FROM relay_calls c "
                "JOIN relay_tasks t ON t.id = c.task_id "
                f"WHERE c.task_id IN ({marks}) AND c.response IS NULL AND t.owner = ?",
                (*chunk, self.server_id),
            )
            calls += [RelayCall(int(r[0]), int(r[1]), r[2], bytes(r[3])) for r in rows]
        return sorted(calls, key=lambda call: call.call_id)

    async def answer_call(self, call_id: int, response: bytes) -> bool:
        answered: int = await self._write(
            _execute,
            "UPDATE relay_calls SET response = ? WHERE id = ? AND response IS NULL "
            "AND task_id IN (SELECT id FROM relay_tasks WHERE owner = ?)",
            (response, call_id, self.server_id),
        )
        return answered == 1

    async def call_answers(self, call_ids: Collection[int]) -> dict[int, bytes]:
        ids = list(call_ids)
        answers: dict[int, bytes] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ", ".join("?" for _ in chunk)
            rows = await self._store._fetchall(
                f"SELECT id, response FROM relay_calls WHERE id IN ({marks}) "
                "AND response IS NOT NULL",
                chunk,
            )
            answers.update((int(r[0]), bytes(r[1])) for r in rows)
        return answers

    async def drop_call(self, call_id: int) -> None:
        await self._write(_execute, "DELETE FROM relay_calls WHERE id = ?", (call_id,))

    async def abandon_held(self) -> int:
        count: int = await self._write(
            _execute,
            "UPDATE relay_tasks SET state = 'DONE', outcome = ? "
            "WHERE holder = ? AND state = 'CLAIMED'",
            (_INTERRUPTED, self.server_id),
        )
        return count


def _execute(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> int:
    return conn.execute(sql, params).rowcount


def _set_offers(
    conn: sqlite3.Connection, server_id: str, rows: list[tuple[str, str, str, str]]
) -> None:
    conn.execute("DELETE FROM cluster_workers WHERE server_id = ?", (server_id,))
    conn.executemany(
        "INSERT INTO cluster_workers (server_id, queue, agent, tenant, declaration) "
        "VALUES (?, ?, ?, ?, ?)",
        [(server_id, *row) for row in rows],
    )


def _remove(conn: sqlite3.Connection, task_id: int) -> None:
    conn.execute("DELETE FROM relay_calls WHERE task_id = ?", (task_id,))
    conn.execute("DELETE FROM relay_tasks WHERE id = ?", (task_id,))


def _forget_run(conn: sqlite3.Connection, run_id: str, owner: str) -> None:
    conn.execute(
        "DELETE FROM relay_calls WHERE task_id IN "
        "(SELECT id FROM relay_tasks WHERE run_id = ? AND owner = ?)",
        (run_id, owner),
    )
    conn.execute("DELETE FROM relay_tasks WHERE run_id = ? AND owner = ?", (run_id, owner))


def _post_call(
    conn: sqlite3.Connection, task_id: int, kind: str, request: bytes, now: float
) -> int:
    cursor = conn.execute(
        "INSERT INTO relay_calls (task_id, kind, request, create_time) VALUES (?, ?, ?, ?)",
        (task_id, kind, request, now),
    )
    return int(cursor.lastrowid or 0)


def _post(conn: sqlite3.Connection, owner: str, task: RelayTask, now: float) -> int:
    superseded = (
        "SELECT id FROM relay_tasks WHERE run_id = ? AND step_id = ? AND item = ? AND attempt < ?"
    )
    key = (task.run_id, task.step_id, task.item, task.attempt)
    conn.execute(f"DELETE FROM relay_calls WHERE task_id IN ({superseded})", key)
    conn.execute(f"DELETE FROM relay_tasks WHERE id IN ({superseded})", key)
    cursor = conn.execute(
        "INSERT INTO relay_tasks (run_id, step_id, item, attempt, owner, epoch, queue, agent, "
        "tenant, payload, state, create_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'PENDING', ?)",
        (
            task.run_id,
            task.step_id,
            task.item,
            task.attempt,
            owner,
            task.epoch,
            task.queue,
            task.agent,
            task.tenant,
            codec.dumps(dict(task.payload)),
            now,
        ),
    )
    return int(cursor.lastrowid or 0)


def _adopt(conn: sqlite3.Connection, owner: str, epochs: dict[str, int]) -> list[AdoptedTask]:
    adopted = []
    for run_id, epoch in epochs.items():
        # Only while the owner row says this server holds the run with this epoch:
        # a stale server never re-stamps the tasks of a run it lost.
        held = conn.execute(
            "SELECT 1 FROM run_owners WHERE run_id = ? AND owner = ? AND epoch = ?",
            (run_id, owner, epoch),
        ).fetchone()
        if held is None:
            continue
        conn.execute("DELETE FROM relay_tasks WHERE run_id = ? AND cancel = 1", (run_id,))
        rows = conn.execute(
            "UPDATE relay_tasks SET owner = ?, epoch = ? WHERE run_id = ? "
            "RETURNING id, run_id, step_id, item, attempt",
            (owner, epoch, run_id),
        ).fetchall()
        adopted += [AdoptedTask(int(r[0]), r[1], r[2], int(r[3]), int(r[4])) for r in rows]
    return sorted(adopted, key=lambda task: task.task_id)
