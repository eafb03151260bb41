"""The client's public surface (podium.client) and where it connects by default
($PODIUM_ADDRESS, else 127.0.0.1:50051)."""

from __future__ import annotations

import pytest

import podium.client
from podium.client import (
    Client,
)


def test_public_surface_is_pinned() -> None:
    assert set(podium.client.__all__) >= {"AsyncClient", "Client", "PodiumError"}
    for name in podium.client.__all__:
        assert hasattr(podium.client, name), name


def test_default_address_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_ADDRESS", "10.0.0.1:4242")
    with Client() as client:
        assert client.address == "10.0.0.1:4242"
    monkeypatch.delenv("PODIUM_ADDRESS")
    with Client() as client:
        assert client.address == "127.0.0.1:50051"
