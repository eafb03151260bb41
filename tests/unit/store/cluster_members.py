"""Two servers' stores open on one database, for the cluster contract suites
(ClusterStore, the shared governance, RelayStore): two stores on one SQLite
file, and two on one PostgreSQL database (the session's embedded server). The
`members` fixture (conftest.py) runs a test on both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from podium.engine.ports import ClusterStore, RunStore
from podium.engine.relay_store import RelayStore
from podium.governance.ports import GovernanceStore
from podium.store.postgres.cluster import PostgresCluster
from podium.store.postgres.governance_store import PostgresGovernanceStore
from podium.store.postgres.relay import PostgresRelay
from podium.store.postgres.store import PostgresStore
from podium.store.sqlite.cluster import SqliteCluster
from podium.store.sqlite.governance_store import SqliteGovernanceStore
from podium.store.sqlite.relay import SqliteRelay
from podium.store.sqlite.store import SqliteStore
from podium.testing.postgres import PodiumDatabases

from .records import event, run_record, step_record

NOW = 1_800_000_000.0
LEASE = 10.0


@dataclass(frozen=True)
class Member:
    runs: RunStore
    cluster: ClusterStore
    governance: GovernanceStore
    relay: RelayStore


@asynccontextmanager
async def sqlite_cluster(directory: Path) -> AsyncIterator[tuple[Member, Member]]:
    """Two stores on one SQLite file, as two `podium serve --cluster` processes."""
    path = str(directory / "cluster.db")
    a = SqliteStore(path, server_id="a")
    b = SqliteStore(path, server_id="b")
    await a.open()
    try:
        await b.open()
        try:
            yield (
                Member(a, SqliteCluster(a), SqliteGovernanceStore(a), SqliteRelay(a)),
                Member(b, SqliteCluster(b), SqliteGovernanceStore(b), SqliteRelay(b)),
            )
        finally:
            await b.close()
    finally:
        await a.close()


@asynccontextmanager
async def postgres_cluster(databases: PodiumDatabases) -> AsyncIterator[tuple[Member, Member]]:
    """Two stores on one fresh PostgreSQL database, as two `podium serve --db
    postgresql://... --cluster` processes."""
    url = await databases.create()
    try:
        a = PostgresStore(url, server_id="a")
        b = PostgresStore(url, server_id="b")
        await a.open()
        try:
            await b.open()
            try:
                yield (
                    Member(a, PostgresCluster(a), PostgresGovernanceStore(a), PostgresRelay(a)),
                    Member(b, PostgresCluster(b), PostgresGovernanceStore(b), PostgresRelay(b)),
                )
            finally:
                await b.close()
        finally:
            await a.close()
    finally:
        await databases.drop(url)


CLUSTER_BACKENDS: list[str] = ["sqlite_cluster", "postgres_cluster"]


async def create_owned_run(member: Member, run_id: str) -> None:
    member.cluster.own_new_run(run_id)
    member.runs.put_run(run_record(run_id))
    member.runs.put_step(run_id, step_record("s", 0))
    member.runs.put_event(event(run_id, 1))
    await member.runs.commit()


def lost_to(member: Member) -> list[set[str]]:
    reported: list[set[str]] = []
    member.cluster.on_lost(reported.append)
    return reported
