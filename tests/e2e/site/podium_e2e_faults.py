"""A plugin for the fault tests: records what really happened in files
outside Podium's database, so that a test checks Podium's records against
them after a kill -9.

- agent `logged` appends one line per execution (run, step, attempt, item
  from its input's `i`) to the file named by config `log` before anything
  else; with config `kill_file`, while that file exists, it holds a count N:
  the N-th execution from then kills its own server (SIGKILL) right after
  logging; then, with config `llm`, makes one LLM call to the `counted` provider
  (config `llm` is passed as the request's options), then holds until the
  file named by config `release` exists (without it, returns at once).
- provider `counted` (the simulated provider at one dollar a token) appends
  one line per call it receives (wall time) to the file named by the option
  `calls`, then holds until the file named by the option `hold_until` exists.

Lines are appended with os.write on an O_APPEND descriptor: in the kernel at
once, they survive a kill -9 of the process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from podium.plugins import hookimpl
from podium.plugins.api import (
    Agent,
    Completion,
    CompletionRequest,
    Message,
    ModelPrice,
    Provider,
    StepContext,
)
from podium.plugins.builtin.simulated_provider import SimulatedProvider

POLL_SECONDS = 0.01
MODEL = "sim-small"
# A dollar per token: costs are whole numbers.
PRICE = ModelPrice(input=Decimal(1_000_000), output=Decimal(1_000_000))
MAX_TOKENS = 10


def append_line(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


async def hold_until(path: str | None) -> None:
    while path and not Path(path).exists():
        await asyncio.sleep(POLL_SECONDS)


class LoggedAgent:
    name = "logged"
    description = "Logs each execution to a file, optionally calls `counted`, optionally holds."
    version = "1"

    async def run(self, ctx: StepContext) -> Any:
        config = ctx.config
        step_input = dict(ctx.input)
        record = {
            "run": ctx.run_id,
            "step": ctx.step_id,
            "attempt": ctx.attempt,
            "i": step_input.get("i", -1),
        }
        append_line(str(config["log"]), json.dumps(record))
        kill_file = config.get("kill_file")
        if kill_file:
            countdown(Path(str(kill_file)))
        options = config.get("llm")
        if options is not None:
            await ctx.llm.complete(
                "counted",
                CompletionRequest(
                    model=MODEL,
                    messages=[Message("user", "count me")],
                    max_tokens=MAX_TOKENS,
                    options=dict(options),
                ),
            )
        await hold_until(config.get("release"))
        return step_input


def countdown(kill_file: Path) -> None:
    """Counts an execution down in `kill_file`; at zero, deletes the file and
    kills this process as a crash would."""
    if not kill_file.exists():
        return
    left = int(kill_file.read_text()) - 1
    if left > 0:
        kill_file.write_text(str(left))
        return
    kill_file.unlink()
    os.kill(os.getpid(), signal.SIGKILL)


class CountedProvider(SimulatedProvider):
    name = "counted"
    description = "The simulated provider, logging every call it receives."

    def __init__(self) -> None:
        super().__init__(latency_ms=0, prices={MODEL: PRICE})

    async def complete(self, request: CompletionRequest) -> Completion:
        calls = request.options.get("calls")
        if calls:
            append_line(str(calls), f"{time.time():.6f}")
        await hold_until(request.options.get("hold_until"))
        return await super().complete(request)


@hookimpl
def register_agents(register: Callable[[Agent], None]) -> None:
    register(LoggedAgent())


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    register(CountedProvider())
