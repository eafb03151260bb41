"""The anthropic SDK is imported on the provider's first call, not when the
plugin loads; a missing SDK still fails the plugin when it loads."""

from __future__ import annotations

import sys

import pytest

from podium.plugins.manager import load_plugins


def test_a_missing_sdk_fails_the_plugin_when_it_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules is how Python marks a module as not importable.
    monkeypatch.setitem(sys.modules, "anthropic", None)
    status = load_plugins(allow={"anthropic"}).plugin("anthropic")
    assert status is not None
    assert status.status == "failed"
    assert "anthropic SDK is not installed" in status.error
    assert status.providers == ()
