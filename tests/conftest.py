"""Fixtures shared by every test: a SQLite file in tmp_path, and a real
grpc.aio server on it (127.0.0.1, ephemeral port) with stubs on one channel.
The helpers tests use to drive it live in podium.testing."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from podium.server.app import PodiumServer
from podium.testing import InProcessServer, Stubs, serving
from podium.testing.postgres import PodiumDatabases, PostgresForTests

# CI explores the same examples on every run (a submission lands or not on
# its own merits); a developer's run draws new ones, to find what CI would not.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """`podium serve` run in-process (main(["serve", ...])) points the root
    logger at the sys.stderr of its test, which pytest closes after it: a
    later test in the same worker would log into a closed file."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    for handler in list(root.handlers):
        if handler not in saved[0]:
            root.removeHandler(handler)
    for handler in saved[0]:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(saved[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresForTests]:
    """One PostgreSQL server for the whole session (each pytest-xdist worker
    has a session of its own), started by the first test that asks for it;
    tests take a database of their own from it (`create_database`)."""
    with PostgresForTests.temporary() as server:
        yield server


@pytest.fixture(scope="session")
def podium_databases(postgres_server: PostgresForTests) -> PodiumDatabases:
    return PodiumDatabases(postgres_server)


@pytest.fixture
async def postgres_db(podium_databases: PodiumDatabases) -> AsyncIterator[str]:
    """The URL of a database of this test's own, dropped after it."""
    url = await podium_databases.create()
    try:
        yield url
    finally:
        await podium_databases.drop(url)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "podium.db")


@pytest.fixture
async def in_process_server(db_path: str) -> AsyncIterator[InProcessServer]:
    async with serving(db_path) as running:
        yield running


@pytest.fixture
def server(in_process_server: InProcessServer) -> PodiumServer:
    return in_process_server.server


@pytest.fixture
def stubs(in_process_server: InProcessServer) -> Stubs:
    return in_process_server.stubs
