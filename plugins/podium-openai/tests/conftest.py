"""Fixtures of the openai plugin's tests: a fake OpenAI API
(podium_openai.testing) on 127.0.0.1, and no OpenAI settings leaking in from
the developer's environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from podium_openai.testing import (
    FakeOpenAI,
)


@pytest.fixture(autouse=True)
def no_openai_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK reads these itself: a developer's own must not leak into the tests."""
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_ADMIN_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "OPENAI_CUSTOM_HEADERS",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    """A fresh SQLite file for a Podium server."""
    return str(tmp_path / "podium.db")
