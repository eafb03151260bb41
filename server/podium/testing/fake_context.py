"""A StepContext for unit-testing an agent: no server, no store, no events.

An agent only ever sees `podium.plugins.api.StepContext`, so a fake of it is
all a unit test needs: `await MyAgent().run(FakeStepContext(...))`, then
assert on the output and on what the agent did, which the fake records:
progress reports, tool calls (run for real, on the `Tool` objects you
register) and LLM calls (made directly on a provider object, see
podium.testing.fake_llm).

It behaves as the engine's context does where an agent can tell: the config
arrives as from a stored workflow (a deep copy; JSON numbers, integral ones
as ints), progress is clamped to [0, 1], a tool outside the step's tools or a
failing tool raises AgentError with the same codes, and a tool's result is
returned as JSON data. Retries, timeouts, governance and events need the
engine: test those through a server (podium.testing.in_process).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from podium.core.failures import failure_from_exception
from podium.core.jsonvalues import from_json_numbers, json_compatible, jsonable
from podium.plugins.api import AgentError, LlmGateway, Provider, Tool, ToolSpec
from podium.plugins.builtin.simulated_provider import SimulatedProvider
from podium.plugins.tool_arguments import check_arguments
from podium.testing.fake_llm import DirectLlmGateway

if TYPE_CHECKING:
    from podium.plugins.api import StepContext

__all__ = ["UNKNOWN_TOOL", "FakeStepContext", "ProgressReport", "ToolUse"]

# The failure code the engine gives a call to a tool the step may not use.
UNKNOWN_TOOL = "podium.UnknownTool"


@dataclass(frozen=True)
class ProgressReport:
    progress: float  # as the STEP_PROGRESS event carries it: clamped to [0, 1]
    message: str


@dataclass(frozen=True)
class ToolUse:
    """One `ctx.call_tool`: what the tool returned, or the AgentError the
    agent got instead."""

    name: str
    arguments: Mapping[str, Any]
    result: Any = None
    error: AgentError | None = None


class FakeStepContext:
    """A `podium.plugins.api.StepContext` for one attempt of one step.

    `tools` are the step's tools (the only ones `call_tool` runs). `llm` is
    a DirectLlmGateway over `providers` (default: the builtin simulated
    provider, with no latency); pass your own `llm` to replace it wholesale.
    """

    def __init__(
        self,
        input: Any = None,
        *,
        config: Mapping[str, Any] | None = None,
        tools: Iterable[Tool] = (),
        providers: Iterable[Provider] | None = None,
        llm: LlmGateway | None = None,
        run_id: str = "fake-run",
        step_id: str = "fake-step",
        attempt: int = 1,
    ) -> None:
        self._input = json_compatible({} if input is None else input)
        self._config: Mapping[str, Any] = from_json_numbers(json_compatible(dict(config or {})))
        self._tools = {tool.name: tool for tool in tools}
        if llm is None:
            llm = DirectLlmGateway(
                providers if providers is not None else [SimulatedProvider(latency_ms=0)]
            )
        self._llm = llm
        self._run_id = run_id
        self._step_id = step_id
        self._attempt = attempt
        self.reports: list[ProgressReport] = []
        self.tool_uses: list[ToolUse] = []

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def step_id(self) -> str:
        return self._step_id

    @property
    def attempt(self) -> int:
        return self._attempt

    @property
    def input(self) -> Any:
        return self._input

    @property
    def config(self) -> Mapping[str, Any]:
        return self._config

    @property
    def llm(self) -> LlmGateway:
        return self._llm

    @property
    def llm_calls(self) -> DirectLlmGateway:
        """The default gateway, to read its recorded `calls` and `requests`
        (TypeError if the test passed its own `llm`)."""
        if not isinstance(self._llm, DirectLlmGateway):
            raise TypeError("this context's llm is not a DirectLlmGateway")
        return self._llm

    @property
    def tools(self) -> Sequence[ToolSpec]:
        return [ToolSpec(t.name, t.description, t.parameters) for t in self._tools.values()]

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> Any:
        tool = self._tools.get(name)
        try:
            if tool is None:
                listed = ", ".join(self._tools) or "none"
                raise AgentError(
                    f"tool {name!r} is not one of this step's tools ({listed})",
                    code=UNKNOWN_TOOL,
                )
            check_arguments(tool, arguments)
            result = jsonable(await tool.call(arguments))
        except asyncio.CancelledError:
            raise
        except AgentError as error:
            self.tool_uses.append(ToolUse(name, dict(arguments), error=error))
            raise
        except Exception as error:
            failure = failure_from_exception(error)
            wrapped = AgentError(f"tool {name!r} failed: {failure.message}", code=failure.type)
            self.tool_uses.append(ToolUse(name, dict(arguments), error=wrapped))
            raise wrapped from None
        self.tool_uses.append(ToolUse(name, dict(arguments), result=result))
        return result

    def report(self, progress: float, message: str = "") -> None:
        self.reports.append(ProgressReport(min(1.0, max(0.0, float(progress))), message))


if TYPE_CHECKING:
    # The fake must stay a StepContext as the protocol evolves: mypy checks it here.
    _conforms: type[StepContext] = FakeStepContext
