"""The `echo` agent: returns its input, optionally after a delay."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from podium.plugins.api import Catalog, ConfigProblem, StepContext
from podium.plugins.builtin import config_schemas
from podium.plugins.builtin.settings import (
    check_delay,
    raise_if_invalid,
    sleep_delay,
    unknown_settings,
)

_SETTINGS = ("delay_ms",)


class EchoAgent:
    name = "echo"
    description = "Returns its input unchanged, after `delay_ms` milliseconds if set."
    version = "1"
    config_schema = config_schemas.ECHO

    async def run(self, ctx: StepContext) -> Any:
        raise_if_invalid(_problems(ctx.config))
        await sleep_delay(ctx.config)
        return ctx.input

    def check_config(self, config: Mapping[str, Any], catalog: Catalog) -> list[ConfigProblem]:
        return list(_problems(config))


def _problems(config: Mapping[str, Any]) -> Iterator[ConfigProblem]:
    yield from unknown_settings(config, _SETTINGS)
    yield from check_delay(config)
