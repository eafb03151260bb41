"""The test PostgreSQL server survives a failed start: pg_ctl once died at
start on a loaded CI machine and took every PostgreSQL test of the session
with it."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from podium.testing.postgres import PostgresForTests


def test_a_failed_start_is_retried_in_a_new_directory() -> None:
    parent = Path(tempfile.mkdtemp(prefix="podium-postgres-"))
    try:
        # A plain file where the data directory should be: initdb fails there,
        # as a start that died would.
        blocked = parent / "data"
        blocked.write_text("not a data directory")
        server = PostgresForTests(blocked)
        try:
            server.start()
            assert server.directory != blocked
            assert blocked.read_text() == "not a data directory" or not blocked.exists()
            asyncio.run(server.execute("SELECT 1"))
        finally:
            server.stop()
        assert not server.directory.exists(), "the started server's directory is removed by stop"
    finally:
        shutil.rmtree(parent, ignore_errors=True)
