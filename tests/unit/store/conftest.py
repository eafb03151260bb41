"""Fixtures of the store contract suite: every storage backend, opened fresh
for each test and handed to the tests only through the ports' types
(`RunStore`, `WorkflowStore`, `GovernanceStore`, `IdentityStore`), never as a concrete class.

Adding a backend is adding one factory to `BACKENDS`: an
async context manager that takes a directory private to the test, opens a
store on a new, empty database identified by that directory, yields it as
`Stores`, and closes it in a `finally`. Every test of the suite then runs
against it unchanged. A factory opened twice on the same directory while
the first store is still open must reach the same database when the backend
can share one (a file, a server): `Stores.shared` says so, and the
durability tests use a second store to see what the first made durable.

mypy checks the conformance statically: each factory builds `Stores` from
its concrete classes, whose fields are typed as the ports, so a signature
that drifts from a port fails `make typecheck` here.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from podium.engine.ports import RunStore, WorkflowStore
from podium.engine.schedule_store import ScheduleStore
from podium.governance.ports import GovernanceStore
from podium.identity.ports import IdentityStore
from podium.store.postgres.governance_store import PostgresGovernanceStore
from podium.store.postgres.identity_store import PostgresIdentityStore
from podium.store.postgres.schedule_store import PostgresScheduleStore
from podium.store.postgres.store import PostgresStore
from podium.store.sqlite.governance_store import SqliteGovernanceStore
from podium.store.sqlite.identity_store import SqliteIdentityStore
from podium.store.sqlite.schedule_store import SqliteScheduleStore
from podium.store.sqlite.store import MEMORY, SqliteStore
from podium.testing.postgres import PodiumDatabases

from .cluster_members import CLUSTER_BACKENDS, Member, postgres_cluster, sqlite_cluster


@dataclass(frozen=True)
class Stores:
    """One open backend, seen through the ports."""

    runs: RunStore
    governance: GovernanceStore
    identity: IdentityStore
    schedules: ScheduleStore
    # Whether another store opened on the same directory reaches this
    # database (False for a private in-process one, such as ":memory:").
    shared: bool


StoreFactory = Callable[[Path], AbstractAsyncContextManager[Stores]]


@asynccontextmanager
async def sqlite_file(directory: Path) -> AsyncIterator[Stores]:
    """A SQLite file, as `podium serve --db PATH` runs."""
    store = SqliteStore(str(directory / "podium.db"))
    await store.open()
    try:
        yield Stores(
            runs=store,
            governance=SqliteGovernanceStore(store),
            identity=SqliteIdentityStore(store),
            schedules=SqliteScheduleStore(store),
            shared=True,
        )
    finally:
        await store.close()


@asynccontextmanager
async def sqlite_memory(directory: Path) -> AsyncIterator[Stores]:
    """SQLite in memory (`--db :memory:`): one connection for reads and writes,
    so it exercises the writer lock instead of WAL."""
    del directory  # nothing on disk
    store = SqliteStore(MEMORY)
    await store.open()
    try:
        yield Stores(
            runs=store,
            governance=SqliteGovernanceStore(store),
            identity=SqliteIdentityStore(store),
            schedules=SqliteScheduleStore(store),
            shared=False,
        )
    finally:
        await store.close()


class postgres:
    """A database of its own on the session's PostgreSQL server, as
    `podium serve --db postgresql://...` runs; the same directory reaches the
    same database. The test's databases are dropped after it (`drop_all`)."""

    def __init__(self, databases: PodiumDatabases) -> None:
        self._databases = databases
        self._urls: dict[Path, str] = {}

    @asynccontextmanager
    async def __call__(self, directory: Path) -> AsyncIterator[Stores]:
        if directory not in self._urls:
            self._urls[directory] = await self._databases.create()
        store = PostgresStore(self._urls[directory], exclusive=False)
        await store.open()
        try:
            yield Stores(
                runs=store,
                governance=PostgresGovernanceStore(store),
                identity=PostgresIdentityStore(store),
                schedules=PostgresScheduleStore(store),
                shared=True,
            )
        finally:
            await store.close()

    async def drop_all(self) -> None:
        for url in self._urls.values():
            await self._databases.drop(url)


# A backend that needs a server is a function of it (by its fixture's name).
BACKENDS: list[StoreFactory | tuple[str, type[postgres]]] = [
    sqlite_file,
    sqlite_memory,
    ("podium_databases", postgres),
]


def _backend_id(backend: StoreFactory | tuple[str, type[postgres]]) -> str:
    return backend[1].__name__ if isinstance(backend, tuple) else backend.__name__


@pytest.fixture(params=BACKENDS, ids=_backend_id)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    if isinstance(request.param, tuple):
        fixture, make = request.param
        factory = make(request.getfixturevalue(fixture))
        try:
            yield factory
        finally:
            await factory.drop_all()
    else:
        yield request.param


@pytest.fixture
async def stores(backend: StoreFactory, tmp_path: Path) -> AsyncIterator[Stores]:
    async with backend(tmp_path) as opened:
        yield opened


@pytest.fixture
def run_store(stores: Stores) -> RunStore:
    return stores.runs


@pytest.fixture
def workflow_store(stores: Stores) -> WorkflowStore:
    return stores.runs


@pytest.fixture
def governance_store(stores: Stores) -> GovernanceStore:
    return stores.governance


@pytest.fixture
def identity_store(stores: Stores) -> IdentityStore:
    return stores.identity


@pytest.fixture
def schedule_store(stores: Stores) -> ScheduleStore:
    return stores.schedules


FreshStores = Callable[[], AbstractAsyncContextManager[Stores]]


@pytest.fixture
def fresh_stores(backend: StoreFactory, tmp_path: Path) -> FreshStores:
    """Opens a new, empty database on each call: for hypothesis examples that
    each need a store of their own (function-scoped fixtures are shared by
    all the examples of a test)."""
    numbers = itertools.count()

    def open_fresh() -> AbstractAsyncContextManager[Stores]:
        directory = tmp_path / f"example-{next(numbers)}"
        directory.mkdir()
        return backend(directory)

    return open_fresh


@pytest.fixture(params=CLUSTER_BACKENDS)
async def members(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Member, Member]]:
    """Two servers' stores on one database (cluster mode), on each backend that
    can be shared."""
    if request.param == "postgres_cluster":
        databases: PodiumDatabases = request.getfixturevalue("podium_databases")
        async with postgres_cluster(databases) as opened:
            yield opened
    else:
        async with sqlite_cluster(tmp_path) as opened:
            yield opened
