"""What `--db` names: a PostgreSQL URL or a SQLite file, and the URL as an
operator may see it. Free of asyncpg, so that a server on SQLite never loads
the PostgreSQL driver."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

SCHEMES = ("postgresql", "postgres")


def is_postgres_url(database: str) -> bool:
    """Whether `--db` names a PostgreSQL database (postgresql://...) rather than a file."""
    return database.split("://", 1)[0].lower() in SCHEMES and "://" in database


def redact(dsn: str) -> str:
    """The DSN with its password replaced, for logs and error messages."""
    parts = urlsplit(dsn)
    if not parts.password:
        return dsn
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
