"""The PostgreSQL backend of the engine's RelayStore port: worker presence and
relayed tasks of `podium serve --db postgresql://... --cluster` processes, as
podium.store.sqlite.relay does on a file.

Every write is a statement (or a short transaction) of its own on a pooled
connection, durable on return; a claim is one conditional UPDATE, so of two
servers claiming one task exactly one wins. Reads see committed data only.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
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
from podium.store.postgres.fence import PostgresFence
from podium.store.postgres.store import PostgresStore

_INTERRUPTED = json.dumps({"interrupted": "the server holding the worker restarted"})


class PostgresRelay:
    """RelayStore (podium.engine.relay_store) over a PostgresStore opened with a server id."""

    def __init__(self, store: PostgresStore) -> None:
        if store.fence is None:
            raise ValueError("the store was not opened in cluster mode (no server id)")
        self._store = store
        self._fence: PostgresFence = store.fence

    @property
    def server_id(self) -> str:
        return self._fence.server_id

    def held_epoch(self, run_id: str) -> int | None:
        return self._fence.owned.get(run_id)

    async def _execute(self, sql: str, *params: Any) -> int:
        """One statement; how many rows it changed."""
        failure = self._store.writer.failure
        if failure is not None:
            raise failure
        status: str = await self._store.pool.execute(sql, *params)
        return int(status.rsplit(" ", 1)[-1])

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
        failure = self._store.writer.failure
        if failure is not None:
            raise failure
        async with self._store.pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM cluster_workers WHERE server_id = $1", self.server_id)
            await conn.executemany(
                "INSERT INTO cluster_workers (server_id, queue, agent, tenant, declaration) "
                "VALUES ($1, $2, $3, $4, $5)",
                [(self.server_id, *row) for row in rows],
            )

    async def offers_elsewhere(self, now: float) -> dict[str, list[WorkerOffer]]:
        rows = await self._store.fetch(
            "SELECT w.server_id, w.queue, w.agent, w.tenant FROM cluster_workers w "
            "JOIN cluster_servers s ON s.server_id = w.server_id "
            "WHERE s.expire_time >= $1 AND w.server_id != $2 "
            "ORDER BY w.server_id, w.queue, w.agent, w.tenant",
            now,
            self.server_id,
        )
        found: dict[str, list[WorkerOffer]] = {}
        for server, queue, agent, tenant in rows:
            found.setdefault(server, []).append(WorkerOffer(queue, agent, tenant or None))
        return found

    async def declarations_elsewhere(self, now: float) -> dict[str, Mapping[str, Any]]:
        rows = await self._store.fetch(
            "SELECT w.agent, MIN(w.declaration) FROM cluster_workers w "
            "JOIN cluster_servers s ON s.server_id = w.server_id "
            "WHERE s.expire_time >= $1 AND w.server_id != $2 GROUP BY w.agent",
            now,
            self.server_id,
        )
        return {row[0]: json.loads(row[1]) for row in rows}

    # -- the owner's side ------------------------------------------------------------

    async def post(self, task: RelayTask, now: float) -> int:
        failure = self._store.writer.failure
        if failure is not None:
            raise failure
        async with self._store.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "WITH gone AS (DELETE FROM relay_tasks WHERE run_id = $1 AND step_id = $2 "
                "AND item = $3 AND attempt < $4 RETURNING id) "
                "DELETE FROM relay_calls WHERE task_id IN (SELECT id FROM gone)",
                task.run_id,
                task.step_id,
                task.item,
                task.attempt,
            )
            task_id = await conn.fetchval(
                "INSERT INTO relay_tasks (run_id, step_id, item, attempt, owner, epoch, queue, "
                "agent, tenant, payload, state, create_time) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'PENDING', $11) RETURNING id",
                task.run_id,
                task.step_id,
                task.item,
                task.attempt,
                self.server_id,
                task.epoch,
                task.queue,
                task.agent,
                task.tenant,
                codec.dumps(dict(task.payload)),
                now,
            )
        return int(task_id)

    async def statuses(self, task_ids: Collection[int], now: float) -> dict[int, RelayStatus]:
        if not task_ids:
            return {}
        rows = await self._store.fetch(
            "SELECT t.id, t.state, t.epoch, t.holder, COALESCE(s.expire_time >= $1, FALSE), "
            "t.cancel, t.outcome FROM relay_tasks t "
            "LEFT JOIN cluster_servers s ON s.server_id = t.holder "
            "WHERE t.id = ANY($2::bigint[])",
            now,
            list(task_ids),
        )
        return {
            int(row[0]): RelayStatus(
                int(row[0]),
                row[1],
                int(row[2]),
                row[3],
                bool(row[4]),
                bool(row[5]),
                codec.loads_optional(row[6]),
            )
            for row in rows
        }

    async def cancel(self, task_id: int) -> None:
        await self._execute(
            "UPDATE relay_tasks SET cancel = TRUE WHERE id = $1 AND owner = $2",
            task_id,
            self.server_id,
        )

    async def withdraw(self, task_id: int) -> bool:
        removed = await self._execute(
            "DELETE FROM relay_tasks WHERE id = $1 AND owner = $2 AND state = 'PENDING'",
            task_id,
            self.server_id,
        )
        return removed == 1

    async def adopt(self, run_ids: Collection[str]) -> list[AdoptedTask]:
        owned = self._fence.owned
        epochs = {run_id: owned[run_id] for run_id in run_ids if run_id in owned}
        if not epochs:
            return []
        failure = self._store.writer.failure
        if failure is not None:
            raise failure
        runs, stamps = list(epochs), [epochs[run_id] for run_id in epochs]
        async with self._store.pool.acquire() as conn, conn.transaction():
            # Only the runs whose owner row says this server holds them with this
            # epoch: a stale server never re-stamps the tasks of a run it lost.
            rows = await conn.fetch(
                "SELECT o.run_id FROM run_owners o "
                "JOIN unnest($1::text[], $2::bigint[]) AS e(run_id, epoch) "
                "ON e.run_id = o.run_id AND e.epoch = o.epoch WHERE o.owner = $3",
                runs,
                stamps,
                self.server_id,
            )
            held = {row[0] for row in rows}
            runs, stamps = [r for r in runs if r in held], [epochs[r] for r in runs if r in held]
            await conn.execute(
                "DELETE FROM relay_tasks WHERE run_id = ANY($1::text[]) AND cancel", runs
            )
            rows = await conn.fetch(
                "UPDATE relay_tasks t SET owner = $1, epoch = e.epoch "
                "FROM unnest($2::text[], $3::bigint[]) AS e(run_id, epoch) "
                "WHERE t.run_id = e.run_id "
                "RETURNING t.id, t.run_id, t.step_id, t.item, t.attempt",
                self.server_id,
                runs,
                stamps,
            )
        adopted = [AdoptedTask(int(r[0]), r[1], r[2], int(r[3]), int(r[4])) for r in rows]
        return sorted(adopted, key=lambda task: task.task_id)

    async def forget_run(self, run_id: str) -> None:
        await self._execute(
            "WITH gone AS (DELETE FROM relay_tasks WHERE run_id = $1 AND owner = $2 "
            "RETURNING id), calls AS (DELETE FROM relay_calls WHERE task_id IN "
            "(SELECT id FROM gone)) SELECT 1",
            run_id,
            self.server_id,
        )

    # -- the holder's side -----------------------------------------------------------

    async def pending(self, offers: Collection[WorkerOffer], limit: int) -> list[PendingTask]:
        agents = sorted({offer.agent for offer in offers})
        if not agents or limit <= 0:
            return []
        rows = await self._store.fetch(
            "SELECT id, owner, run_id, step_id, item, attempt, epoch, queue, agent, tenant, "
            "payload FROM relay_tasks WHERE state = 'PENDING' AND agent = ANY($1::text[]) "
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
        claimed = await self._execute(
            "UPDATE relay_tasks SET state = 'CLAIMED', holder = $1, claim_time = $2 "
            "WHERE id = $3 AND state = 'PENDING'",
            self.server_id,
            now,
            task_id,
        )
        return claimed == 1

    async def cancelled(self, task_ids: Collection[int]) -> set[int]:
        ids = set(task_ids)
        if not ids:
            return set()
        rows = await self._store.fetch(
            "SELECT id, cancel FROM relay_tasks WHERE id = ANY($1::bigint[]) AND holder = $2",
            list(ids),
            self.server_id,
        )
        live = {int(row[0]) for row in rows}
        return {int(row[0]) for row in rows if row[1]} | (ids - live)

    async def finish(self, task_id: int, outcome: Mapping[str, Any]) -> bool:
        done = await self._execute(
            "UPDATE relay_tasks SET state = 'DONE', outcome = $1 "
            "WHERE id = $2 AND holder = $3 AND state = 'CLAIMED'",
            codec.dumps(dict(outcome)),
            task_id,
            self.server_id,
        )
        return done == 1

    async def remove(self, task_id: int) -> None:
        await self._execute(
            "WITH calls AS (DELETE FROM relay_calls WHERE task_id = $1) "
            "DELETE FROM relay_tasks WHERE id = $1",
            task_id,
        )

    async def post_call(self, task_id: int, kind: str, request: bytes, now: float) -> int:
        failure = self._store.writer.failure
        if failure is not None:
            raise failure
        call_id = await self._store.pool.fetchval(
            "INSERT INTO relay_calls (task_id, kind, request, create_time) "
            "VALUES ($1, $2, $3, $4) RETURNING id",
            task_id,
            kind,
            request,
            now,
        )
        return int(call_id)

    async def open_calls(self, task_ids: Collection[int]) -> list[RelayCall]:
        if not task_ids:
            return []
        rows = await self._store.fetch(
            "SELECT c.id, c.task_id, c.kind, c.request FROM relay_calls c "
            "JOIN relay_tasks t ON t.id = c.task_id "
            "WHERE c.task_id = ANY($1::bigint[]) AND c.response IS NULL AND t.owner = $2 "
            "ORDER BY c.id",
            list(task_ids),
            self.server_id,
        )
        return [RelayCall(int(r[0]), int(r[1]), r[2], bytes(r[3])) for r in rows]

    async def answer_call(self, call_id: int, response: bytes) -> bool:
        answered = await self._execute(
            "UPDATE relay_calls SET response = $1 WHERE id = $2 AND response IS NULL "
            "AND task_id IN (SELECT id FROM relay_tasks WHERE owner = $3)",
            response,
            call_id,
            self.server_id,
        )
        return answered == 1

    async def call_answers(self, call_ids: Collection[int]) -> dict[int, bytes]:
        if not call_ids:
            return {}
        rows = await self._store.fetch(
            "SELECT id, response FROM relay_calls WHERE id = ANY($1::bigint[]) "
            "AND response IS NOT NULL",
            list(call_ids),
        )
        return {int(r[0]): bytes(r[1]) for r in rows}

    async def drop_call(self, call_id: int) -> None:
        await self._execute("DELETE FROM relay_calls WHERE id = $1", call_id)

    async def abandon_held(self) -> int:
        return await self._execute(
            "UPDATE relay_tasks SET state = 'DONE', outcome = $1 "
            "WHERE holder = $2 AND state = 'CLAIMED'",
            _INTERRUPTED,
            self.server_id,
        )
