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
  script       scripted tool calling, used only when the request offers tools:
               a list of turns, each {"tool_calls": [{"name": ..., "arguments":
               {...}}, ...]} or {"text": "..."}. The turn played is the number
               of assistant messages already in the conversation (past the
               end of the script, the usual answer). A string argument equal
               to "$last_result" becomes the last tool result (parsed as JSON
               when it is JSON); inside a longer string, or in a text turn,
               "$last_result" is replaced by that result's text (a JSON
               string without its quotes).

A streamed request (stream: true) hands its answer to `on_delta` in pieces of
a few words, spread over the latency, before it returns the whole.

A request with a response_format is answered with JSON: a value its schema
accepts, made up from the schema and the prompt (deterministically), or
{"answer": prompt} for a bare json_object.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
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
    ToolCall,
    Usage,
    emit_delta,
)
from podium.plugins.builtin.schema_instance import instance

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
# Words per streamed piece of an answer.
STREAM_WORDS = 3
_SUMMARY_WORDS = 12
LAST_RESULT = "$last_result"
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
        if not request.stream:
            await asyncio.sleep(latency_ms / 1000)
        if fault is not None:
            if request.stream:
                await asyncio.sleep(latency_ms / 1000)
            raise fault
        completion = respond(request)
        if request.stream:
            await _stream(request, completion.text, latency_ms)
        return completion

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


async def _stream(request: CompletionRequest, text: str, latency_ms: float) -> None:
    """Streams `text` in pieces of a few words: half the latency before the
    first, the other half spread between them, as a real model's tokens."""
    pieces = _pieces(text)
    await asyncio.sleep(latency_ms / 2000)
    pause = latency_ms / 2000 / max(len(pieces), 1)
    for piece in pieces:
        emit_delta(request, piece)
        await asyncio.sleep(pause)


def _pieces(text: str) -> list[str]:
    """`text` cut after every STREAM_WORDS-th space: joined, they are `text`."""
    pieces, start, spaces = [], 0, 0
    for index, char in enumerate(text):
        if char == " ":
            spaces += 1
            if spaces % STREAM_WORDS == 0:
                pieces.append(text[start : index + 1])
                start = index + 1
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def respond(request: CompletionRequest) -> Completion:
    """The deterministic answer to `request` (assumes a known model)."""
    turn = scripted_turn(request)
    calls: list[ToolCall] = []
    structured = request.response_format
    if turn is None and structured is not None:
        schema = structured.get("schema")
        seed = _last_user_message(request.messages)
        value = instance(schema, seed) if isinstance(schema, Mapping) else {"answer": seed}
        text = json.dumps(value, ensure_ascii=False)
    elif turn is None:
        text = f"[{request.model}] {summarize(_last_user_message(request.messages))}"
    elif "text" in turn:
        last = _as_text(_last_tool_result(request.messages))
        text = str(turn["text"]).replace(LAST_RESULT, last)
    else:
        text = ""
        calls = _tool_calls(turn, request)
    finish_reason = "tool_calls" if calls else "stop"
    output_tokens = tokens(text) if not calls else tokens(_calls_text(calls))
    if request.max_tokens is not None and output_tokens > request.max_tokens:
        # A real model cut short mid-call returns no usable call either.
        text = (text or _calls_text(calls))[: request.max_tokens * CHARS_PER_TOKEN]
        calls = []
        output_tokens = request.max_tokens
        finish_reason = "length"
    input_tokens = max(1, tokens(_conversation_text(request.messages)))
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, calls=1)
    left_requests = request.options.get("remaining_requests")
    left_tokens = request.options.get("remaining_tokens")
    return Completion(
        text=text,
        usage=usage,
        finish_reason=finish_reason,
        model=request.model,
        tool_calls=calls,
        remaining_requests=int(left_requests) if isinstance(left_requests, int | float) else None,
        remaining_tokens=int(left_tokens) if isinstance(left_tokens, int | float) else None,
    )


def scripted_turn(request: CompletionRequest) -> Mapping[str, Any] | None:
    """This call's turn of the `script` option, or None (no tools offered, no
    script, or past its end); raises ProviderError for a malformed script."""
    script = request.options.get("script")
    if not request.tools or script is None:
        return None
    if not isinstance(script, list):
        raise _bad_script("must be a list of turns")
    index = sum(1 for message in request.messages if message.role == "assistant")
    if index >= len(script):
        return None
    turn = script[index]
    where = f"turn {index}"
    if not isinstance(turn, Mapping) or len(turn) != 1 or not {"text", "tool_calls"} & set(turn):
        raise _bad_script(f"{where} must be {{text: ...}} or {{tool_calls: [...]}}")
    calls = turn.get("tool_calls", [])
    if not isinstance(calls, list) or ("tool_calls" in turn and not calls):
        raise _bad_script(f"{where}: tool_calls must be a non-empty list")
    for i, call in enumerate(calls):
        if (
            not isinstance(call, Mapping)
            or not isinstance(call.get("name"), str)
            or not isinstance(call.get("arguments", {}), Mapping)
            or not set(call) <= {"name", "arguments"}
        ):
            raise _bad_script(f"{where}: tool_calls[{i}] must be {{name, arguments}}")
    return turn


def _tool_calls(turn: Mapping[str, Any], request: CompletionRequest) -> list[ToolCall]:
    index = sum(1 for message in request.messages if message.role == "assistant")
    last = _last_tool_result(request.messages)
    return [
        ToolCall(
            id=f"call_{index}_{i}",
            name=call["name"],
            arguments=_substitute(dict(call.get("arguments", {})), last),
        )
        for i, call in enumerate(turn["tool_calls"])
    ]


def _substitute(value: Any, last: str) -> Any:
    """`value` with "$last_result" replaced by the last tool result."""
    if isinstance(value, str):
        if value == LAST_RESULT:
            try:
                return json.loads(last)
            except ValueError:
                return last
        return value.replace(LAST_RESULT, _as_text(last))
    if isinstance(value, Mapping):
        return {key: _substitute(item, last) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, last) for item in value]
    return value


def _as_text(result: str) -> str:
    """A tool result to splice into a string: a JSON string without its quotes."""
    try:
        value = json.loads(result)
    except ValueError:
        return result
    return value if isinstance(value, str) else result


def _last_tool_result(messages: Sequence[Message]) -> str:
    for message in reversed(messages):
        if message.role == "tool":
            return message.content
    return ""


def _calls_text(calls: Sequence[ToolCall]) -> str:
    return json.dumps(
        [{"name": c.name, "arguments": c.arguments} for c in calls], default=str, sort_keys=True
    )


def _conversation_text(messages: Sequence[Message]) -> str:
    """What the model reads: every message (tool results included) and the
    tool calls it made."""
    parts = []
    for message in messages:
        parts.append(message.content)
        if message.tool_calls:
            parts.append(_calls_text(message.tool_calls))
    return "".join(parts)


def _bad_script(reason: str) -> ProviderError:
    return ProviderError(f"option script: {reason}", kind="bad_request", status=400)


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
