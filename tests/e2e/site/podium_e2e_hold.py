"""A plugin for the end-to-end tests: the `hold` agent, which holds its step
until the test says so, so that a test can stop or kill a server while a
step is certainly running, whatever the machine's speed.

This directory is a site directory: on PYTHONPATH, its dist-info makes the
plugin discoverable through its entry point, as `pip install` would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podium.plugins import hookimpl
from podium.plugins.api import Agent, StepContext

# Short enough not to slow a test, long enough not to busy the machine.
POLL_SECONDS = 0.01


class HoldAgent:
    name = "hold"
    description = (
        "Returns its input once the file named by config `release` exists;"
        " an input with `hold: false` returns at once. `hold` is left out of the output."
    )
    version = "1"

    async def run(self, ctx: StepContext) -> Any:
        step_input = dict(ctx.input)
        held = step_input.pop("hold", True)
        release = Path(str(ctx.config["release"]))
        while held is not False and not release.exists():
            await asyncio.sleep(POLL_SECONDS)
        return step_input


@hookimpl
def register_agents(register: Callable[[Agent], None]) -> None:
    register(HoldAgent())
