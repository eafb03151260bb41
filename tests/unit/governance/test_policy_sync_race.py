"""A cluster sync that read the stored overrides before a local UpdateQuota was
stored must not apply that stale read (it would undo the change on this server
until the next sync). Real SQLite store; its reads are held at the end (a slow
database) so that the local change lands in between, deterministically."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from podium.core.clock import ManualClock
from podium.governance.service import Governance
from podium.store.sqlite.governance_store import SqliteGovernanceStore
from podium.store.sqlite.store import SqliteStore
from tests.unit.governance.test_durable_governance import POLICY


class SlowReads(SqliteGovernanceStore):
    """The real store; a read of the overrides answers once `answer` is set."""

    def __init__(self, store: SqliteStore) -> None:
        super().__init__(store)
        self.answer = asyncio.Event()
        self.read = asyncio.Event()

    async def overrides(self, kind: Any) -> Any:
        rows = await super().overrides(kind)
        self.read.set()
        await self.answer.wait()
        return rows


async def test_a_stale_sync_does_not_undo_a_local_change(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "podium.db"))
    await store.open()
    try:
        slow = SlowReads(store)
        governance = Governance(POLICY, ManualClock(start=1_000_000.0), slow)
        slow.answer.set()
        await governance.load()
        slow.answer.clear()
        slow.read.clear()

        sync = asyncio.create_task(governance.sync_policies())
        await slow.read.wait()  # the sync read the overrides: none yet
        changed = {"name": "rpm", "scope": "provider:simulated", "dimension": "requests"}
        await governance.put_quota({**changed, "limit": 99, "burst": 5})
        slow.answer.set()
        assert await sync is False
        [rpm] = governance.quotas.rate_limits()
        assert rpm.limit == 99

        # The next sync reads the stored change: nothing to adopt, nothing undone.
        assert await governance.sync_policies() is False
        [rpm] = governance.quotas.rate_limits()
        assert rpm.limit == 99
    finally:
        await store.close()
