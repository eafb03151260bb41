"""The plugin Podium loads through the `podium` entry point `openai`."""

from __future__ import annotations

from collections.abc import Callable

from podium.plugins.api import Provider
from podium.plugins.hookspecs import hookimpl
from podium_openai.provider import OpenAIProvider, require_sdk


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    require_sdk()  # a missing SDK fails the plugin now, not its first call
    register(OpenAIProvider())
