"""LLM calls for an agent under test, without a server or governance.

`DirectLlmGateway` is what `ctx.llm` is in a FakeStepContext: it hands each
request straight to a provider object (the builtin `SimulatedProvider`, your
own provider plugin, or a `ScriptedProvider`) and records every call, so a
test asserts on what the agent asked for. It keeps the parts of the real
gateway's contract an agent can observe: an unset `max_tokens` is sent as
the gateway's default, the cost comes from the provider's price, and
`fallbacks` take the call when a provider fails with a fault (an outage, not
the caller's error). What it leaves out is governance: no breakers, quotas
or budgets; test those through a server (podium.testing.in_process).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING

from podium.governance.breakers import classify

# The fake sends what the governed gate sends for an unset max_tokens, so that
# providers see identical requests.
from podium.governance.gate import DEFAULT_MAX_TOKENS
from podium.plugins.api import (
    Completion,
    CompletionRequest,
    LlmResult,
    ModelPrice,
    Provider,
    ProviderError,
    Target,
    ToolCall,
    Usage,
)

if TYPE_CHECKING:
    from podium.plugins.api import LlmGateway

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DirectLlmGateway",
    "LlmCall",
    "ScriptedProvider",
    "text_reply",
    "tool_calls_reply",
]


@dataclass(frozen=True)
class LlmCall:
    """One request handed to a provider: its answer, or the error it raised."""

    provider: str
    request: CompletionRequest
    completion: Completion | None = None
    error: BaseException | None = None


class DirectLlmGateway:
    """An `LlmGateway` that calls providers directly; `calls` records every
    provider call in order (a fallback adds one per target tried)."""

    def __init__(self, providers: Iterable[Provider]) -> None:
        self.providers = {provider.name: provider for provider in providers}
        self.calls: list[LlmCall] = []

    @property
    def requests(self) -> list[CompletionRequest]:
        """What the providers were sent, in order."""
        return [call.request for call in self.calls]

    async def complete(
        self,
        provider: str,
        request: CompletionRequest,
        *,
        fallbacks: Sequence[Target] = (),
    ) -> LlmResult:
        if request.max_tokens is None:
            request = replace(request, max_tokens=DEFAULT_MAX_TOKENS)
        targets = [Target(provider, request.model), *fallbacks]
        for index, target in enumerate(targets):
            try:
                return await self._call(target, replace(request, model=target.model))
            except ProviderError as error:
                # As the real gateway: only an unavailable provider passes the
                # call on; the caller's own mistakes would fail there too.
                if index == len(targets) - 1 or classify(error) != "failure":
                    raise
        raise AssertionError("unreachable: the last target returns or raises")

    async def _call(self, target: Target, request: CompletionRequest) -> LlmResult:
        implementation = self.providers.get(target.provider)
        if implementation is None:
            known = ", ".join(sorted(self.providers)) or "none"
            error = ProviderError(
                f"unknown provider {target.provider!r} (given to the fake: {known})",
                kind="bad_request",
            )
            self.calls.append(LlmCall(target.provider, request, error=error))
            raise error
        try:
            completion = await implementation.complete(request)
        except BaseException as error:
            self.calls.append(LlmCall(target.provider, request, error=error))
            raise
        self.calls.append(LlmCall(target.provider, request, completion=completion))
        price = implementation.price(target.model)
        cost = price.cost(completion.usage) if price is not None else Decimal(0)
        model = completion.model or target.model
        return LlmResult(completion=completion, provider=target.provider, model=model, cost=cost)


def text_reply(text: str, *, input_tokens: int = 0, output_tokens: int = 0) -> Completion:
    """A final answer, as a provider returns it."""
    return Completion(text=text, usage=Usage(input_tokens, output_tokens, calls=1))


def tool_calls_reply(*calls: ToolCall, text: str = "") -> Completion:
    """A turn in which the model asks for tool calls."""
    return Completion(
        text=text, usage=Usage(calls=1), finish_reason="tool_calls", tool_calls=tuple(calls)
    )


class ScriptedProvider:
    """A provider that plays back the replies a test queued, one per call: a
    Completion (see text_reply, tool_calls_reply), or an exception to raise
    (a ProviderError to simulate a fault). `requests` records what it was
    asked; running out of replies fails the test loudly."""

    description = "Plays back scripted replies (podium.testing)."

    def __init__(
        self,
        *replies: Completion | BaseException,
        name: str = "scripted",
        models: Sequence[str] = ("scripted",),
        price: ModelPrice | None = None,
    ) -> None:
        self.name = name
        self.models: Sequence[str] = tuple(models)
        self._price = price
        self._replies: deque[Completion | BaseException] = deque(replies)
        self.requests: list[CompletionRequest] = []

    def reply(self, *replies: Completion | BaseException) -> None:
        """Queues more replies, after those already queued."""
        self._replies.extend(replies)

    @property
    def pending(self) -> int:
        """Replies not played yet (0 when the agent used them all)."""
        return len(self._replies)

    def price(self, model: str) -> ModelPrice | None:
        return self._price

    async def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        if not self._replies:
            raise AssertionError(
                f"{self.name}: no scripted reply left for call {len(self.requests)}"
            )
        reply = self._replies.popleft()
        if isinstance(reply, BaseException):
            raise reply
        return reply


if TYPE_CHECKING:
    # Both must keep satisfying the plugin contract as it evolves: mypy checks them here.
    _gateway: type[LlmGateway] = DirectLlmGateway
    _provider: type[Provider] = ScriptedProvider
