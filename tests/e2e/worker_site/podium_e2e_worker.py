"""A plugin for the worker tests, installed only beside `podium worker`
processes (never in the server's): agent `wlog` records what really happened
in a file outside Podium's database.

Each execution appends {"run", "step", "attempt", "item", "pid", "event"}
lines to the file named by config `log`: "start" before anything else, then
"end" when it returns or "cancelled" when the server cancels it. With config
`release`, it holds (reporting progress) until that file exists. It returns
{"pid": its process id, "input": its input}. Lines are appended with
os.write on an O_APPEND descriptor: they survive a kill -9 of the process.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from podium.plugins import hookimpl
from podium.plugins.api import Agent, StepContext

POLL_SECONDS = 0.01


def append_line(path: str, record: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)


class LoggedWorkerAgent:
    name = "wlog"
    description = "Logs each execution to a file, optionally holds until a file exists."
    version = "1"
    output_schema: ClassVar = {"type": "object", "required": ["pid"]}

    async def run(self, ctx: StepContext) -> Any:
        log = str(ctx.config["log"])
        record = {
            "run": ctx.run_id,
            "step": ctx.step_id,
            "attempt": ctx.attempt,
            "item": getattr(ctx, "item", -1),
            "pid": os.getpid(),
        }
        append_line(log, {**record, "event": "start"})
        release = ctx.config.get("release")
        try:
            if release:
                ctx.report(0.0, "holding")
                while not Path(str(release)).exists():
                    await asyncio.sleep(POLL_SECONDS)
        except asyncio.CancelledError:
            append_line(log, {**record, "event": "cancelled"})
            raise
        append_line(log, {**record, "event": "end"})
        return {"pid": os.getpid(), "input": ctx.input}


@hookimpl
def register_agents(register: Callable[[Agent], None]) -> None:
    register(LoggedWorkerAgent())
