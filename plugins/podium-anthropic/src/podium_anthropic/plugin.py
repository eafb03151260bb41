"""The entry point Podium loads (`[project.entry-points.podium] anthropic`)."""

from __future__ import annotations

from collections.abc import Callable

from podium.plugins.api import Provider
from podium.plugins.hookspecs import hookimpl
from podium_anthropic.provider import AnthropicProvider, require_sdk

__all__ = ["register_providers"]


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    require_sdk()  # a missing SDK fails the plugin now, not its first call
    register(AnthropicProvider())
