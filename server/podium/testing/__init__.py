"""Testing Podium plugins and workflows: what Podium's own tests use.

Unit-test an agent without a server::

    from podium.testing import FakeStepContext

    ctx = FakeStepContext({"text": "hi"}, config={"prompt": "Say {{ input.text }}"})
    output = await LlmAgent().run(ctx)      # the builtin simulated provider answers
    assert ctx.llm_calls.requests[0].messages[-1].content == "Say hi"

Run workflows through a real server, in-process on an ephemeral port::

    from podium.testing import serving, create_workflow, run_to_end, echo_step

    async with serving(str(tmp_path / "podium.db")) as (server, stubs):
        await create_workflow(stubs, "hello", {"steps": [echo_step("greet")]})
        run, events = await run_to_end(stubs, "hello", {"name": "Ada"})

Modules, one concept each:

- fake_context: FakeStepContext, a StepContext that records what the agent did
- fake_llm: DirectLlmGateway (providers called directly) and ScriptedProvider
- agents: HoldAgent (a step that runs until released), BarrierAgent (steps that
  finish only when enough run at once), served with `plugins.plugins_with(...)`
- in_process: `serving()`, a real gRPC server in the test's event loop
- process: `podium serve` as a subprocess (signals, crashes, the CLI)
- stubs: typed stubs of every service on one channel
- workflows, runs, events, errors, values: building requests and reading answers
- waiting: polling for a state instead of sleeping (and HANG_TIMEOUT)
- cluster: several `podium serve --cluster` processes on one database
- workers: `podium worker` as a subprocess, waiting until workers serve an agent

`ManualClock` (from podium.core.clock) moves only when the test advances it:
pass it to `serving(clock=...)` and timers, retries and quotas never sleep.
"""

from __future__ import annotations

from podium.core.clock import ManualClock
from podium.testing.agents import BarrierAgent, HoldAgent
from podium.testing.cluster import Cluster
from podium.testing.errors import error_info, error_status, field_violations
from podium.testing.events import FINAL_EVENT_TYPES, index_of, of_type, sequences
from podium.testing.fake_context import FakeStepContext, ProgressReport, ToolUse
from podium.testing.fake_llm import (
    DirectLlmGateway,
    LlmCall,
    ScriptedProvider,
    text_reply,
    tool_calls_reply,
)
from podium.testing.in_process import InProcessServer, serving
from podium.testing.plugins import plugins_with
from podium.testing.process import (
    ServerExited,
    ServerProcess,
    start_server_process,
    start_server_process_async,
)
from podium.testing.runs import (
    collect_events,
    create_workflow,
    get_run,
    resolve_approval,
    run_to_end,
    start_run,
    step_of,
    step_reaches,
)
from podium.testing.stubs import Stubs
from podium.testing.values import money_nanos, plain, struct
from podium.testing.waiting import HANG_TIMEOUT, eventually
from podium.testing.workers import (
    WorkerProcess,
    start_worker_process,
    worker_sessions,
    workers_serve,
)
from podium.testing.workflows import FOREVER_MS, echo_step, make_spec

__all__ = [
    "FINAL_EVENT_TYPES",
    "FOREVER_MS",
    "HANG_TIMEOUT",
    "BarrierAgent",
    "Cluster",
    "DirectLlmGateway",
    "FakeStepContext",
    "HoldAgent",
    "InProcessServer",
    "LlmCall",
    "ManualClock",
    "ProgressReport",
    "ScriptedProvider",
    "ServerExited",
    "ServerProcess",
    "Stubs",
    "ToolUse",
    "WorkerProcess",
    "collect_events",
    "create_workflow",
    "echo_step",
    "error_info",
    "error_status",
    "eventually",
    "field_violations",
    "get_run",
    "index_of",
    "make_spec",
    "money_nanos",
    "of_type",
    "plain",
    "plugins_with",
    "resolve_approval",
    "run_to_end",
    "sequences",
    "serving",
    "start_run",
    "start_server_process",
    "start_server_process_async",
    "start_worker_process",
    "step_of",
    "step_reaches",
    "struct",
    "text_reply",
    "tool_calls_reply",
    "worker_sessions",
    "workers_serve",
]
