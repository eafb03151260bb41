"""What plugins implement and what they receive: agents, providers, tools and
the step context. This module is the plugin author's contract; keep it small
and stable.

Hooks (see hookspecs.py) are synchronous and only register objects; the
objects do the work in `async` methods.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from podium.core.failures import AgentError, ProviderError
from podium.core.model import Usage
from podium.core.schemas import dotted_path, violations

__all__ = [
    "Agent",
    "AgentError",
    "BudgetThreshold",
    "Catalog",
    "Completion",
    "CompletionRequest",
    "ConfigProblem",
    "LlmGateway",
    "LlmResult",
    "Message",
    "ModelPrice",
    "Provider",
    "ProviderError",
    "StepContext",
    "Target",
    "Tool",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "agent_schema",
    "config_problems",
    "emit_delta",
]

# Optional attributes of an agent: JSON Schemas (mappings) of its step
# config, its input and its output. ListAgents publishes them; CreateWorkflow
# checks a step's config against the first, the engine an attempt's input and
# output against the others.
AGENT_SCHEMAS = ("config_schema", "input_schema", "output_schema")

# A problem in a step's `config`: (field path inside config, reason).
ConfigProblem = tuple[str, str]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A model's request to call a tool; `id` pairs it with its result."""

    id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a conversation. An assistant message may carry
    `tool_calls`; a "tool" message carries the result of the call named by
    `tool_call_id` (and the tool's `name`) in `content`."""

    role: str  # "system" | "user" | "assistant" | "tool"
    content: str = ""
    tool_calls: Sequence[ToolCall] = ()
    tool_call_id: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to a model: its name, description and the JSON schema
    of its arguments object."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    model: str
    messages: Sequence[Message]
    max_tokens: int | None = None
    temperature: float | None = None
    # Provider-specific settings from the step's config (e.g. the simulated
    # provider's latency_ms); providers ignore keys they do not know.
    options: Mapping[str, Any] = field(default_factory=dict)
    tools: Sequence[ToolSpec] = ()
    # {"type": "json_object"} or {"type": "json_schema", "name": ..., "schema": ...}.
    response_format: Mapping[str, Any] | None = None
    # Ask the provider to stream (usage still arrives; see ProviderError).
    stream: bool = False
    # Set by Podium on a streamed request: a provider that streams calls it
    # (through `emit_delta`) with each piece of answer text, in order, as it
    # arrives, so that live subscribers see the text grow. Not compared.
    on_delta: Callable[[str], None] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    usage: Usage
    finish_reason: str = "stop"  # "stop" | "length" | "tool_calls" | "content_filter"
    model: str = ""
    tool_calls: Sequence[ToolCall] = ()
    # What the provider says is left of its rate limits (from response
    # headers such as x-ratelimit-remaining-*): governance clamps its local
    # buckets down to it.
    remaining_requests: int | None = None
    remaining_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None

    def cost(self, usage: Usage) -> Decimal:
        cached = usage.cached_input_tokens
        uncached = max(usage.input_tokens - cached, 0)
        total = uncached * self.input + usage.output_tokens * self.output
        total += cached * (self.cached_input if self.cached_input is not None else self.input)
        total += usage.cache_write_tokens * (
            self.cache_write if self.cache_write is not None else self.input
        )
        return total / Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class LlmResult:
    """What the governed gateway returns to an agent."""

    completion: Completion
    provider: str
    model: str
    cost: Decimal


@dataclass(frozen=True, slots=True)
class BudgetThreshold:
    """A budget's used fraction (settled plus reserved, of its limit) at or above which a
    cheaper target takes the calls."""

    budget: str
    fraction: float


@dataclass(frozen=True, slots=True)
class Target:
    """A provider and model to try, for fallbacks. With `when_budget_above`, calls go
    straight to this target (skipping those before it) once that budget is used that far:
    routing to a cheaper model as a budget fills."""

    provider: str
    model: str
    when_budget_above: BudgetThreshold | None = None


class LlmGateway(Protocol):
    """The step's door to providers: every call is admitted by circuit
    breakers, quotas and budgets, then recorded (usage, cost, an LLM_CALL
    event). With `fallbacks`, the next target is used when a target's
    breaker is open or its provider is unavailable; the result says which
    target answered."""

    async def complete(
        self,
        provider: str,
        request: CompletionRequest,
        *,
        fallbacks: Sequence[Target] = (),
    ) -> LlmResult: ...


class StepContext(Protocol):
    """What an agent gets for one attempt of one step."""

    @property
    def run_id(self) -> str: ...
    @property
    def step_id(self) -> str: ...
    @property
    def attempt(self) -> int:
        """1 for the first attempt."""
        ...

    @property
    def input(self) -> Any:
        """The step's input: its CEL expressions evaluated (JSON-compatible)."""
        ...

    @property
    def config(self) -> Mapping[str, Any]:
        """The step's static agent settings."""
        ...

    @property
    def llm(self) -> LlmGateway: ...
    @property
    def tools(self) -> Sequence[ToolSpec]:
        """The tools this step may use (the step's `tools`)."""
        ...

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> Any:
        """Runs one of the step's tools, recorded as TOOL_CALLED and
        TOOL_RESULT events; raises AgentError for an unknown or failing tool."""
        ...

    def report(self, progress: float, message: str = "") -> None:
        """Publishes a STEP_PROGRESS event; progress is a fraction in [0, 1]."""
        ...


@runtime_checkable
class Agent(Protocol):
    """Runs one step. Cancellation arrives as asyncio.CancelledError in `run`.

    It may also define `config_schema`, `input_schema` and `output_schema`
    (JSON Schemas, see AGENT_SCHEMAS) and `check_config` (see config_problems)."""

    name: str
    description: str
    version: str

    async def run(self, ctx: StepContext) -> Any:
        """Returns the step's output: anything JSON can hold."""
        ...


@runtime_checkable
class Provider(Protocol):
    """An LLM provider. It may also define `configure(settings)`: the
    server calls it at start-up with the policy file's `providers.<name>`
    settings (API key, base URL, timeouts, per-model options)."""

    name: str
    description: str
    models: Sequence[str]

    def price(self, model: str) -> ModelPrice | None:
        """USD price of a model, or None if unknown (the call is then free
        of charge in the ledger and flagged)."""
        ...

    async def complete(self, request: CompletionRequest) -> Completion: ...


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    # JSON schema of the arguments object.
    parameters: Mapping[str, Any]
    call: Callable[[Mapping[str, Any]], Awaitable[Any]]


class Catalog(Protocol):
    """Names of what is registered, for agents that check their step config."""

    @property
    def agent_names(self) -> Collection[str]: ...
    @property
    def provider_names(self) -> Collection[str]: ...
    @property
    def tool_names(self) -> Collection[str]: ...


def emit_delta(request: CompletionRequest, text: str) -> None:
    """Hands a streamed piece of the answer to whoever listens (see
    CompletionRequest.on_delta); never raises into the provider."""
    if request.on_delta is not None and text:
        try:
            request.on_delta(text)
        except Exception:  # a listener's fault must not break the call
            logging.getLogger("podium.plugins").exception("an output delta listener failed")


def agent_schema(agent: object, kind: str) -> Mapping[str, Any] | None:
    """One of the agent's JSON Schemas (kind: one of AGENT_SCHEMAS), or None."""
    schema = getattr(agent, kind, None)
    return schema if isinstance(schema, Mapping) else None


def config_problems(
    agent: Agent, config: Mapping[str, Any], catalog: Catalog
) -> list[ConfigProblem]:
    """A step's config checked against the agent's `config_schema` (each
    violation named by its field path inside config) and by the agent itself,
    if it knows how: an agent may define `check_config(config, catalog) ->
    Iterable[ConfigProblem]`. CreateWorkflow and ValidateWorkflow call this so
    that a bad config is rejected before any run starts."""
    problems: list[ConfigProblem] = []
    check = getattr(agent, "check_config", None)
    if callable(check):
        try:
            problems = [(str(field), str(reason)) for field, reason in check(config, catalog)]
        # A plugin's bug must not fail the RPC itself, nor (SystemExit, from a
        # servicer's task) stop the event loop.
        except BaseException as error:
            problems = [("", f"agent {agent.name!r} could not check its config: {error!r}")]
    schema = agent_schema(agent, "config_schema")
    if schema is not None:
        # The agent's own check names a fault at or below a place more precisely.
        reported = [field for field, _ in problems]
        for path, reason in violations(schema, dict(config)):
            field = dotted_path(path)
            if not any(_within(other, field) for other in reported):
                problems.append((field, f"violates the agent's config_schema: {reason}"))
    return problems


def _within(field: str, place: str) -> bool:
    return not place or field == place or field.startswith((place + ".", place + "["))
