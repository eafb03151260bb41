"""`podium tokens create --db`: an API token made against the database
itself, while no server holds it. This is how the first admin token comes to
be; its secret is printed once by the command and logged nowhere."""

from __future__ import annotations

from pathlib import Path

from podium.core.clock import SystemClock
from podium.identity.principal import Role
from podium.identity.token_catalog import TokenCatalog
from podium.identity.tokens import NewToken
from podium.store.postgres.identity_store import PostgresIdentityStore
from podium.store.postgres.store import PostgresStore
from podium.store.postgres.url import is_postgres_url
from podium.store.sqlite.identity_store import SqliteIdentityStore
from podium.store.sqlite.ownership import DatabaseLock
from podium.store.sqlite.store import SqliteStore

BOOTSTRAP_CREATOR = "bootstrap"


async def create_token_offline(
    db_path: str,
    display_name: str,
    tenant: str,
    roles: frozenset[Role],
    ttl_seconds: float | None = None,
) -> NewToken:
    """OSError when a server holds the database (create tokens through it then)."""
    if is_postgres_url(db_path):
        return await _create_on_postgres(db_path, display_name, tenant, roles, ttl_seconds)
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    lock = DatabaseLock(db_path)
    lock.acquire()
    try:
        store = SqliteStore(db_path)
        await store.open()
        try:
            catalog = TokenCatalog(SqliteIdentityStore(store), SystemClock())
            return await catalog.create(
                display_name, tenant, roles, creator=BOOTSTRAP_CREATOR, ttl_seconds=ttl_seconds
            )
        finally:
            await store.close()
    finally:
        lock.release()


async def _create_on_postgres(
    url: str,
    display_name: str,
    tenant: str,
    roles: frozenset[Role],
    ttl_seconds: float | None,
) -> NewToken:
    store = PostgresStore(url)  # exclusive: refused while a server holds the database
    await store.open()
    try:
        catalog = TokenCatalog(PostgresIdentityStore(store), SystemClock())
        return await catalog.create(
            display_name, tenant, roles, creator=BOOTSTRAP_CREATOR, ttl_seconds=ttl_seconds
        )
    finally:
        await store.close()
