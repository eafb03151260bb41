"""`podium worker`: bad options and a refused session end in one `error:`
line and exit code 2, never a traceback (the worker logs to stderr before)."""

from __future__ import annotations

import asyncio
import os

import pytest

from podium.testing import serving
from podium.testing.process import CLI


async def worker(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *CLI,
        "worker",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PODIUM_PLUGINS": "none"},
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, err.decode()


def last_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), err
    return lines[-1]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--concurrency", "0"], "--concurrency: must be a positive integer, not '0'"),
        (["--queue", "no spaces"], "--queue: must match"),
        (["--agent", "nope"], "no installed plugin provides agent(s) nope (installed: echo"),
    ],
)
async def test_bad_options_are_one_line_errors(args: list[str], needle: str) -> None:
    code, err = await worker("--address", "127.0.0.1:1", *args)
    assert code == 2
    line = last_error_line(err)
    assert len(err.strip().splitlines()) == 1, err
    assert needle in line, line


async def test_a_session_the_server_refuses_ends_the_worker_with_its_reason(db_path: str) -> None:
    async with serving(db_path) as (server, _):
        code, err = await worker(
            "--address", f"127.0.0.1:{server.port}", "--agent", "echo", "--identity", "x" * 300
        )
    assert code == 2
    line = last_error_line(err)
    assert line.startswith("error: the server refused the worker:"), line
    assert "open.identity" in line
