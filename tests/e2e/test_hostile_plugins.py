"""A real `podium serve` with hostile plugins installed: one raising
KeyboardInterrupt at import, one whose agents call sys.exit() or raise
KeyboardInterrupt. The server serves, their runs fail with a recorded
failure, SIGTERM stops it gracefully, and a restart on the same database
does not run them again (no poison run)."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2

from podium.testing import (
    ServerProcess,
    Stubs,
    collect_events,
    create_workflow,
    get_run,
    start_run,
    step_of,
)
from podium.v1 import control_service_pb2, run_pb2

C = control_service_pb2
R = run_pb2
StartServing = Callable[..., ServerProcess]

HOSTILE_AGENTS = """
import sys

from podium.plugins import hookimpl


class Exits:
    name = "exits"
    description = "calls sys.exit()"
    version = "1"

    async def run(self, ctx):
        sys.exit(3)


class Interrupts:
    name = "interrupts"
    description = "raises KeyboardInterrupt"
    version = "1"

    async def run(self, ctx):
        raise KeyboardInterrupt


@hookimpl
def register_agents(register):
    register(Exits())
    register(Interrupts())
"""

INTERRUPTS_AT_IMPORT = """
raise KeyboardInterrupt
"""


def install(site: Path, module: str, source: str) -> None:
    """A one-module distribution with a `podium` entry point, as pip leaves it."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    dist_info = site / f"{module}-1.0.dist-info"
    dist_info.mkdir()
    name = module.replace("_", "-")
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[podium]\n{module} = {module}\n")


async def serving_status(stubs: Stubs) -> int:
    answer = await stubs.health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    status: int = answer.status
    return status


async def test_hostile_plugins_never_stop_the_server(
    tmp_path: Path, start_serving: StartServing
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install(site, "podium_e2e_hostile", HOSTILE_AGENTS)
    install(site, "podium_e2e_interrupting", INTERRUPTS_AT_IMPORT)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}

    first = start_serving(env=env)
    async with grpc.aio.insecure_channel(first.address) as channel:
        stubs = Stubs.on(channel)
        plugins = await stubs.control.ListPlugins(control_service_pb2.ListPluginsRequest())
        status = {p.name: p for p in plugins.plugins}
        assert status["podium_e2e_interrupting"].status == C.PLUGIN_STATUS_FAILED
        assert "KeyboardInterrupt" in status["podium_e2e_interrupting"].error
        assert status["podium_e2e_hostile"].status == C.PLUGIN_STATUS_LOADED

        runs = {}
        for agent, failure in (("exits", "SystemExit"), ("interrupts", "KeyboardInterrupt")):
            await create_workflow(stubs, agent, {"steps": [{"id": "a", "agent": agent}]})
            run = await start_run(stubs, agent)
            await collect_events(stubs, run.name)
            ended = await get_run(stubs, run.name)
            assert ended.state == R.RUN_STATE_FAILED, first.log_tail()
            assert step_of(ended, "a").failure.type == failure
            runs[run.name] = failure
        assert await serving_status(stubs) == health_pb2.HealthCheckResponse.SERVING
    assert first.stop() == 0, first.log_tail()  # SIGTERM: a graceful stop

    second = start_serving(env=env)
    async with grpc.aio.insecure_channel(second.address) as channel:
        stubs = Stubs.on(channel)
        assert await serving_status(stubs) == health_pb2.HealthCheckResponse.SERVING
        for name, failure in runs.items():
            again = await get_run(stubs, name)
            assert again.state == R.RUN_STATE_FAILED
            a = step_of(again, "a")
            assert a.failure.type == failure
            assert len(a.attempts) == 1  # not resumed, not run again
        # ...and it still runs runs.
        await create_workflow(stubs, "fine", {"steps": [{"id": "a", "agent": "echo"}]})
        fine = await start_run(stubs, "fine")
        await collect_events(stubs, fine.name)
        assert (await get_run(stubs, fine.name)).state == R.RUN_STATE_SUCCEEDED
    assert second.stop() == 0, second.log_tail()
