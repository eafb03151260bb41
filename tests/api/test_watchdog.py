"""The loop-lag watchdog: an agent that blocks the event loop (as a plugin
calling time.sleep does) is named in the log, with its run, step and how long
the loop was blocked."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import pytest

from podium.plugins.api import StepContext
from podium.server.watchdog import DEFAULT_THRESHOLD
from podium.testing import create_workflow, plugins_with, run_to_end, serving
from podium.v1 import run_pb2

# Blocks the loop for several watchdog thresholds: whatever the machine's load,
# the loop thread cannot answer a heartbeat while it sleeps.
BLOCK_SECONDS = 4 * DEFAULT_THRESHOLD


class BlockingAgent:
    name = "blocking"
    description = "Sleeps without awaiting: blocks the event loop."
    version = "1"

    async def run(self, ctx: StepContext) -> Any:
        time.sleep(BLOCK_SECONDS)
        return {}


async def test_a_blocking_agent_is_named_with_the_time_it_blocked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="podium.watchdog")
    async with serving(plugins=plugins_with([BlockingAgent()])) as server:
        await create_workflow(
            server.stubs, "blocks", {"steps": [{"id": "sleepy", "agent": "blocking"}]}
        )
        run, _ = await run_to_end(server.stubs, "blocks")
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED
    run_id = run.name.rsplit("/", 1)[-1]
    messages = [r.getMessage() for r in caplog.records if r.name == "podium.watchdog"]
    ended = [m for m in messages if "was blocked for" in m]
    assert len(ended) == 1, messages
    assert f"agent 'blocking' (run {run_id}, step sleepy) at " in ended[0]
    assert "test_watchdog.py" in ended[0]  # the line of the agent that sleeps
    match = re.search(r"blocked for ([0-9.]+) s", ended[0])
    assert match is not None and float(match.group(1)) >= DEFAULT_THRESHOLD
