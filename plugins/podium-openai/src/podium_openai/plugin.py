"""The plugin Podium loads through the `podium` entry point `openai`."""

from __future__ import annotations

from collections.abc import Callable

from podium.plugins.api import Provider
from podium.plugins.hookspecs import hookimpl
from podium_openai.provider import OpenAIProvider


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    register(OpenAIProvider())
