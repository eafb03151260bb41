"""Fixtures for the builtin plugin's unit tests."""

from __future__ import annotations

import pytest

from podium.plugins import Registry, load_plugins


@pytest.fixture
def catalog() -> Registry:
    """What the builtin plugin registers, and nothing installed: the names
    an agent checks its config against."""
    return load_plugins(include_entry_points=False).registry
