"""ControlService through a real server: what is installed (agents, providers,
plugins) and the system status."""

from __future__ import annotations

from podium.testing import (
    FOREVER_MS,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    start_run,
)
from podium.v1 import (
    control_service_pb2,
    execution_service_pb2,
)

X = execution_service_pb2


SLOW = {"steps": [echo_step("slow", delay_ms=FOREVER_MS)]}


async def test_control_service_lists_agents_providers_plugins(stubs: Stubs) -> None:
    agents = (await stubs.control.ListAgents(control_service_pb2.ListAgentsRequest())).agents
    by_name = {a.name: a for a in agents}
    assert {"echo", "flaky", "llm", "transform"} <= set(by_name)
    assert by_name["echo"].plugin == "builtin"
    assert by_name["echo"].version and by_name["echo"].description

    providers = (
        await stubs.control.ListProviders(control_service_pb2.ListProvidersRequest())
    ).providers
    simulated = {p.name: p for p in providers}["simulated"]
    assert {"sim-small", "sim-large"} <= set(simulated.models)
    assert simulated.plugin == "builtin"

    plugins = (await stubs.control.ListPlugins(control_service_pb2.ListPluginsRequest())).plugins
    builtin = {p.name: p for p in plugins}["builtin"]
    assert builtin.status == control_service_pb2.PLUGIN_STATUS_LOADED
    assert builtin.error == ""
    assert {"echo", "flaky", "llm", "transform"} <= set(builtin.agents)
    assert "simulated" in builtin.providers


async def test_system_status_counts_active_runs(stubs: Stubs) -> None:
    idle = await stubs.control.GetSystemStatus(control_service_pb2.GetSystemStatusRequest())
    assert idle.version
    assert idle.HasField("start_time")
    assert idle.uptime.ToNanoseconds() >= 0
    assert (idle.active_runs, idle.running_steps) == (0, 0)
    assert idle.failed_plugins == 0

    await create_workflow(stubs, "busy", SLOW)
    run = await start_run(stubs, "busy")
    await collect_events(stubs, run.name, limit=3)  # the slow step started
    busy = await stubs.control.GetSystemStatus(control_service_pb2.GetSystemStatusRequest())
    assert (busy.active_runs, busy.running_steps) == (1, 1)
    assert busy.uptime.ToNanoseconds() >= idle.uptime.ToNanoseconds()

    await stubs.executions.CancelRun(X.CancelRunRequest(name=run.name))
    await collect_events(stubs, run.name)
    done = await stubs.control.GetSystemStatus(control_service_pb2.GetSystemStatusRequest())
    assert (done.active_runs, done.running_steps) == (0, 0)


async def test_system_status_reports_the_database(stubs: Stubs) -> None:
    status = await stubs.control.GetSystemStatus(control_service_pb2.GetSystemStatusRequest())
    database = status.database
    assert database.backend == "sqlite"
    assert database.reachable and database.writable
    assert database.error == ""
    assert database.HasField("ping_latency")
    assert 0 < database.ping_latency.ToNanoseconds() < 2 * 10**9
