"""The `simulated` provider: an offline, deterministic stand-in for an LLM.

It answers without a network, prices its models like real ones, takes a
configurable time (in asyncio, so cancellation works) and can inject the
faults governance must handle, reproducibly, for demos and tests.

Request options (CompletionRequest.options):
  latency_ms   overrides the provider's latency for this call
  fail_with    "server_error" | "rate_limited" | "overloaded" | "timeout"
  fail_times   fail the first N identical requests with `fail_with`
               (without it, `fail_with` alone fails every call)
  fail_rate    probability in [0, 1] that a call fails (with `fail_with`,
               default "server_error"); the n-th identical request fails or
               not depending only on (seed, request, n)
  seed         varies the fail_rate draws
  remaining_requests, remaining_tokens
               reported as the provider's rate-limit headers would be
  fail_models  only these models fail (default: every model), so that a
               fallback to another model can be shown
  retry_after  seconds reported with "rate_limited" (default 1)
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from podium.plugins.api import (
    Completion,
    CompletionRequest,
    Message,
    ModelPrice,
    ProviderError,
    Usage,
)

PRICES: Mapping[str, ModelPrice] = {
    "sim-small": ModelPrice(input=Decimal("0.50"), output=Decimal("1.50")),
    "sim-large": ModelPrice(input=Decimal("3"), output=Decimal("15")),
}

# kind -> HTTP status a real provider would answer with.
FAULTS: Mapping[str, int | None] = {
    "server_error": 500,
    "rate_limited": 429,
    "overloaded": 529,
    "timeout": None,
}

CHARS_PER_TOKEN = 4
_SUMMARY_WORDS = 12
# Enough to remember the retries of every request of a large demo; beyond
# that the oldest counters are dropped (a request then counts from zero).
_MAX_TRACKED_REQUESTS = 10_000


class SimulatedProvider:
    name = "simulated"
    description = "Offline deterministic LLM for demos and tests; options inject faults."
    version = "1"

    def __init__(
        self, *, latency_ms: float = 20, prices: Mapping[str, ModelPrice] | None = None
    ) -> None:
        if latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        self.latency_ms = latency_ms
        self._prices = dict(PRICES if prices is None else prices)
        self.models: Sequence[str] = tuple(self._prices)
        self._calls: dict[str, int] = {}

    def price(self, model: str) -> ModelPrice | None:
        return self._prices.get(model)

    async def complete(self, request: CompletionRequest) -> Completion:
        if request.model not in self._prices:
            raise ProviderError(
                f"unknown model {request.model!r}; known: {', '.join(self.models)}",
                kind="bad_request",
                status=400,
            )
        if request.max_tokens is not None and request.max_tokens <= 0:
            raise ProviderError("max_tokens must be > 0", kind="bad_request", status=400)
        options = request.options
        latency_ms = _number_option(options, "latency_ms", self.latency_ms)
        fault = self._fault(request)
        await asyncio.sleep(latency_ms / 1000)
        if fault is not None:
            raise fault
        return respond(request)

    def _fault(self, request: CompletionRequest) -> ProviderError | None:
        options = request.options
        kind = options.get("fail_with")
        if kind is not None and kind not in FAULTS:
            raise ProviderError(
                f"fail_with must be one of {', '.join(FAULTS)}, not {kind!r}",
                kind="bad_request",
                status=400,
            )
        fail_times = options.get("fail_times")
        fail_rate = options.get("fail_rate")
        if kind is None and fail_rate is None:
            return None
        only = options.get("fail_models")
        if isinstance(only, list) and request.model not in only:
            return None
        key = _fingerprint(request)
        count = self._count(key)
        if fail_rate is not None:
            rate = _number_option(options, "fail_rate", 0)
            if _draw(f"{options.get('seed', '')}\0{key}\0{count}") >= rate:
                return None
        elif fail_times is not None and count > _number_option(options, "fail_times", 0):
            return None
        return _error(kind or "server_error", count, options)

    def _count(self, key: str) -> int:
        """1 for the first call with this request, 2 for the next, ..."""
        count = self._calls.pop(key, 0) + 1
        if len(self._calls) >= _MAX_TRACKED_REQUESTS:
            del self._calls[next(iter(self._calls))]
        self._calls[key] = count  # re-inserted last: the dict stays in LRU order
        return count


def respond(request: CompletionRequest) -> Completion:
    """The deterministic answer to `request` (assumes a known model)."""
    text = f"[{request.model}] {summarize(_last_user_message(request.messages))}"
    finish_reason = "stop"
    output_tokens = tokens(text)
    if request.max_tokens is not None and output_tokens > request.max_tokens:
        text = text[: request.max_tokens * CHARS_PER_TOKEN]
        output_tokens = request.max_tokens
        finish_reason = "length"
    input_tokens = max(1, tokens("".join(message.content for message in request.messages)))
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, calls=1)
    left_requests = request.options.get("remaining_requests")
    left_tokens = request.options.get("remaining_tokens")
    return Completion(
        text=text,
        usage=usage,
        finish_reason=finish_reason,
        model=request.model,
        remaining_requests=int(left_requests) if isinstance(left_requests, int | float) else None,
        remaining_tokens=int(left_tokens) if isinstance(left_tokens, int | float) else None,
    )


def summarize(prompt: str) -> str:
    words = prompt.split()
    if not words:
        return "Nothing to answer: the prompt is empty."
    head = " ".join(words[:_SUMMARY_WORDS])
    more = "..." if len(words) > _SUMMARY_WORDS else ""
    return f"Simulated answer to a {len(words)}-word prompt: {head}{more}"


def tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _last_user_message(messages: Sequence[Message]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    return ""


def _fingerprint(request: CompletionRequest) -> str:
    digest = hashlib.sha256(request.model.encode())
    for message in request.messages:
        digest.update(b"\0" + message.role.encode() + b"\0" + message.content.encode())
    return digest.hexdigest()


def _draw(key: str) -> float:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def _number_option(options: Mapping[str, Any], key: str, default: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ProviderError(f"option {key} must be a number >= 0", kind="bad_request", status=400)
    return float(value)


def _error(kind: str, count: int, options: Mapping[str, Any]) -> ProviderError:
    message = f"simulated {kind.replace('_', ' ')} (call {count} of this request)"
    retry_after = _number_option(options, "retry_after", 1.0) if kind == "rate_limited" else None
    return ProviderError(message, kind=kind, status=FAULTS[kind], retry_after=retry_after)
