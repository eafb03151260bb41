"""The step context an agent receives, and its governed LLM gateway."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from podium.engine.model import ZERO, AttemptRecord, StepRecord
from podium.plugins.api import CompletionRequest, LlmResult, ProviderError

if TYPE_CHECKING:
    from podium.engine.executor import RunExecutor


class StepLlmGateway:
    """Every LLM call of one attempt: resolved to a provider, priced, and
    recorded on the attempt, the step and the run (usage, cost, an LLM_CALL
    event). Quotas, budgets and breakers plug in here."""

    __slots__ = ("_attempt", "_executor", "_step")

    def __init__(self, executor: RunExecutor, step: StepRecord, attempt: AttemptRecord) -> None:
        self._executor = executor
        self._step = step
        self._attempt = attempt

    async def complete(self, provider: str, request: CompletionRequest) -> LlmResult:
        implementation = self._executor.engine.registry.provider(provider)
        if implementation is None:
            raise ProviderError(f"unknown provider {provider!r}", kind="bad_request")
        completion = await implementation.complete(request)
        price = implementation.price(request.model)
        cost: Decimal = price.cost(completion.usage) if price is not None else ZERO
        usage = completion.usage.copy()
        usage.calls = max(usage.calls, 1)
        model = completion.model or request.model
        self._executor.record_llm_call(self._step, self._attempt, usage, cost, provider, model)
        return LlmResult(completion=completion, provider=provider, model=model, cost=cost)


class AttemptContext:
    """Implements podium.plugins.api.StepContext for one attempt."""

    __slots__ = ("_attempt", "_config", "_executor", "_input", "_llm", "_step")

    def __init__(
        self,
        executor: RunExecutor,
        step: StepRecord,
        attempt: AttemptRecord,
        input: Any,
        config: Mapping[str, Any],
    ) -> None:
        self._executor = executor
        self._step = step
        self._attempt = attempt
        self._input = input
        self._config = config
        self._llm = StepLlmGateway(executor, step, attempt)

    @property
    def run_id(self) -> str:
        return self._executor.run.run_id

    @property
    def step_id(self) -> str:
        return self._step.step_id

    @property
    def attempt(self) -> int:
        return self._attempt.number

    @property
    def input(self) -> Any:
        return self._input

    @property
    def config(self) -> Mapping[str, Any]:
        return self._config

    @property
    def llm(self) -> StepLlmGateway:
        return self._llm

    def report(self, progress: float, message: str = "") -> None:
        self._executor.report_progress(self._step, self._attempt, progress, message)
