"""`--db` as a PostgreSQL URL: which values name one, and how they read in
logs and errors (never with the password)."""

from __future__ import annotations

import pytest

from podium.store.postgres.url import is_postgres_url, redact


@pytest.mark.parametrize(
    "database",
    [
        "postgresql://podium@localhost/podium",
        "postgres://podium:pw@db:5432/podium",
        "POSTGRESQL://h/d",
        "postgresql://podium@/podium?host=/var/run/postgresql",
    ],
)
def test_urls_name_postgres(database: str) -> None:
    assert is_postgres_url(database)


@pytest.mark.parametrize(
    "database",
    [
        "./.podium/podium.db",
        ":memory:",
        "postgresql.db",
        "postgresql:relative.db",
        "/data/postgres://odd/name.db",
        "sqlite://x",
    ],
)
def test_files_and_other_schemes_do_not(database: str) -> None:
    assert not is_postgres_url(database)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://podium:s3cret@db:5432/podium", "postgresql://podium:***@db:5432/podium"),
        ("postgres://u:p%40ss@h/d?sslmode=require", "postgres://u:***@h/d?sslmode=require"),
        ("postgresql://podium@db/podium", "postgresql://podium@db/podium"),
        ("postgresql://podium:@/podium?host=/tmp/x", "postgresql://podium:@/podium?host=/tmp/x"),
    ],
)
def test_the_password_never_shows(url: str, shown: str) -> None:
    assert redact(url) == shown
