"""The `anthropic` provider plugin: the real SDK over real HTTP to a fake
Messages API on 127.0.0.1 (podium_anthropic.testing). One run through a real
Podium server: test_through_server.py.

Costs are golden Decimals: Anthropic reports input tokens without cache reads
and cache writes, and the plugin must map that onto Podium's convention so
that the governance price table computes the bill exactly."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
from podium_anthropic import PRICES, AnthropicProvider
from podium_anthropic.testing import (
    FakeAnthropic,
    Reply,
    error,
    message,
    message_events,
    text_block,
    tool_use_block,
)

from podium.governance.prices import Price
from podium.plugins.api import (
    Completion,
    CompletionRequest,
    Message,
    ProviderError,
    ToolCall,
    ToolSpec,
    Usage,
)
from podium.plugins.manager import load_plugins
from podium.v1 import event_pb2, run_pb2

E = event_pb2
R = run_pb2

MODEL = "claude-haiku-4-5"
# USD per million: input, output, cache read, cache write.
HAIKU = Price(Decimal(1), Decimal(5), cached_input=Decimal("0.1"), cache_write=Decimal("1.25"))
RATE_LIMITS = {
    "anthropic-ratelimit-requests-remaining": "49",
    "anthropic-ratelimit-tokens-remaining": "39000",
}
WEATHER = ToolSpec(
    name="weather",
    description="The weather in a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)


Maker = Callable[..., AnthropicProvider]


@pytest.fixture
async def make(fake: FakeAnthropic) -> AsyncIterator[Maker]:
    """Makes providers configured for the fake (plus `settings`); closes them."""
    made: list[AnthropicProvider] = []

    def provider_for(**settings: Any) -> AnthropicProvider:
        provider = AnthropicProvider()
        provider.configure({"api_key": "test-key", "base_url": fake.base_url, **settings})
        made.append(provider)
        return provider

    yield provider_for
    for provider in made:
        await provider.aclose()


def ask(prompt: str = "Hello", **fields: Any) -> CompletionRequest:
    return CompletionRequest(model=MODEL, messages=[Message("user", prompt)], **fields)


def cost(usage: Usage) -> Decimal:
    """What `usage` of MODEL costs at its list price, by Podium's price table rules."""
    return HAIKU.cost(usage)


async def fails(provider: AnthropicProvider, request: CompletionRequest) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await provider.complete(request)
    return caught.value


# -- a plain message -------------------------------------------------------------------


async def test_a_plain_message(fake: FakeAnthropic, make: Maker) -> None:
    fake.reply(
        Reply(
            body=message([text_block("Hi there.")], input_tokens=12, output_tokens=4),
            headers=RATE_LIMITS,
        )
    )
    provider = make()
    request = CompletionRequest(
        model=MODEL,
        messages=[Message("system", "Be brief."), Message("user", "Hello")],
        max_tokens=64,
        temperature=0.2,
        options={"top_k": 5, "latency_ms": 10},  # latency_ms is another provider's
    )
    completion = await provider.complete(request)

    assert completion == Completion(
        text="Hi there.",
        usage=Usage(input_tokens=12, output_tokens=4, calls=1),
        finish_reason="stop",
        model=MODEL,
        remaining_requests=49,
        remaining_tokens=39000,
    )
    [sent] = fake.requests
    assert sent.path == "/v1/messages"
    assert "test-key" in (sent.headers.get("x-api-key", "") + sent.headers.get("authorization", ""))
    assert sent.body == {
        "model": MODEL,
        "max_tokens": 64,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        "temperature": 0.2,
        "top_k": 5,
    }


async def test_max_tokens_defaults_and_a_length_stop(fake: FakeAnthropic, make: Maker) -> None:
    fake.reply(
        Reply(
            body=message(
                [text_block("Once upon")],
                input_tokens=3,
                output_tokens=2,
                stop_reason="max_tokens",
            )
        )
    )
    provider = make(max_tokens=2)
    completion = await provider.complete(ask())
    assert completion.finish_reason == "length"
    assert fake.requests[0].body["max_tokens"] == 2


# -- usage and exact costs ----------------------------------------------------------------

# (reported: input, cache read, cache write, output) -> Podium's usage and the bill in USD.
GOLDEN = {
    "plain": ((1000, 0, 0, 500), Usage(1000, 500, 0, 0, 0, 1), Decimal("0.0035")),
    # 200 x $1 + 5000 x $0.10 + 300 x $5
    "cache read": ((200, 5000, 0, 300), Usage(5200, 300, 5000, 0, 0, 1), Decimal("0.0022")),
    # 100 x $1 + 4000 x $1.25 + 250 x $5
    "cache write": ((100, 0, 4000, 250), Usage(100, 250, 0, 4000, 0, 1), Decimal("0.00635")),
    # 50 x $1 + 3000 x $0.10 + 1000 x $1.25 + 100 x $5
    "both": ((50, 3000, 1000, 100), Usage(3050, 100, 3000, 1000, 0, 1), Decimal("0.0021")),
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("case", list(GOLDEN))
async def test_usage_maps_to_the_exact_bill(
    fake: FakeAnthropic, make: Maker, case: str, stream: bool
) -> None:
    (input_tokens, cache_read, cache_write, output_tokens), expected, bill = GOLDEN[case]
    counts: dict[str, Any] = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read": cache_read,
        "cache_write": cache_write,
    }
    content = [text_block("Cached answer.")]
    if stream:
        fake.reply(Reply(events=message_events(content, **counts)))
    else:
        fake.reply(Reply(body=message(content, **counts)))
    provider = make()

    completion = await provider.complete(ask(stream=stream))

    assert completion.text == "Cached answer."
    assert completion.usage == expected
    assert cost(completion.usage) == bill


def test_list_prices_carry_cache_rates() -> None:
    assert Price.from_model_price(PRICES[MODEL]) == HAIKU
    sonnet = PRICES["claude-sonnet-4-5"]
    assert (sonnet.input, sonnet.output) == (Decimal(3), Decimal(15))
    assert (sonnet.cached_input, sonnet.cache_write) == (Decimal("0.30"), Decimal("3.75"))
    for model, price in PRICES.items():
        assert price.cached_input == price.input / 10, model
        assert price.cache_write == price.input * Decimal("1.25"), model


# -- streaming ---------------------------------------------------------------------------


async def test_a_streamed_message_with_text_and_a_tool_call(
    fake: FakeAnthropic, make: Maker
) -> None:
    content = [
        text_block("Let me look that up for you."),
        tool_use_block("toolu_1", "weather", {"city": "Paris", "units": ["C", "F"]}),
    ]
    events = message_events(
        content,
        input_tokens=30,
        output_tokens=42,
        cache_read=100,
        cache_write=8,
        stop_reason="tool_use",
    )
    fake.reply(Reply(events=events, headers=RATE_LIMITS))
    provider = make()

    completion = await provider.complete(ask("Weather in Paris?", tools=[WEATHER], stream=True))

    assert completion.text == "Let me look that up for you."
    assert completion.tool_calls == (
        ToolCall("toolu_1", "weather", {"city": "Paris", "units": ["C", "F"]}),
    )
    assert completion.finish_reason == "tool_calls"
    assert completion.usage == Usage(130, 42, 100, 8, 0, 1)
    assert (completion.remaining_requests, completion.remaining_tokens) == (49, 39000)
    # 30 x $1 + 100 x $0.10 + 8 x $1.25 + 42 x $5
    assert cost(completion.usage) == Decimal("0.00026")
    body = fake.requests[0].body
    assert body["stream"] is True
    assert body["tools"] == [
        {
            "name": "weather",
            "description": "The weather in a city.",
            "input_schema": dict(WEATHER.parameters),
        }
    ]


async def test_a_stream_dropped_midway_charges_the_reservation(
    fake: FakeAnthropic, make: Maker
) -> None:
    events = message_events([text_block("A long answer " * 5)], input_tokens=9, output_tokens=30)
    delta_at = next(i for i, (name, _) in enumerate(events) if name == "message_delta")
    fake.reply(Reply(events=events, break_after=delta_at - 2))
    provider = make()

    failure = await fails(provider, ask(stream=True))

    assert failure.kind == "connection"
    assert failure.charge_reservation


async def test_a_stream_that_ends_before_its_usage_charges_the_reservation(
    fake: FakeAnthropic,
    make: Maker,
) -> None:
    events = message_events([text_block("Cut")], input_tokens=9, output_tokens=3)
    finished = [event for event in events if event[0] not in ("message_delta", "message_stop")]
    fake.reply(Reply(events=finished))
    failure = await fails(make(), ask(stream=True))
    assert failure.kind == "connection"
    assert failure.charge_reservation


async def test_an_error_event_inside_a_stream(fake: FakeAnthropic, make: Maker) -> None:
    events = message_events([text_block("Partial")], input_tokens=9, output_tokens=3)
    overloaded = ("error", error("overloaded_error", "Overloaded"))
    fake.reply(Reply(events=[*events[:4], overloaded]))
    failure = await fails(make(), ask(stream=True))
    assert failure.kind == "overloaded"
    assert failure.charge_reservation


async def test_a_stream_refused_before_it_starts_charges_nothing(
    fake: FakeAnthropic, make: Maker
) -> None:
    fake.reply(Reply(status=529, body=error("overloaded_error", "Overloaded")))
    failure = await fails(make(), ask(stream=True))
    assert (failure.kind, failure.status) == ("overloaded", 529)
    assert not failure.charge_reservation


# -- tools: a tool-use turn and its follow-up ----------------------------------------------------


async def test_a_tool_use_turn_and_the_follow_up_with_its_results(
    fake: FakeAnthropic, make: Maker
) -> None:
    calls = [
        tool_use_block("toolu_a", "weather", {"city": "Paris"}),
        tool_use_block("toolu_b", "weather", {"city": "Rome"}),
    ]
    fake.reply(
        Reply(body=message(calls, input_tokens=50, output_tokens=20, stop_reason="tool_use")),
        Reply(body=message([text_block("Paris 18C, Rome 24C.")], input_tokens=90, output_tokens=9)),
    )
    provider = make()
    conversation = [
        Message("system", "You report the weather."),
        Message("user", "Paris and Rome?"),
    ]

    first = await provider.complete(
        CompletionRequest(model=MODEL, messages=conversation, tools=[WEATHER])
    )
    assert first.finish_reason == "tool_calls"
    assert first.text == ""
    assert first.tool_calls == (
        ToolCall("toolu_a", "weather", {"city": "Paris"}),
        ToolCall("toolu_b", "weather", {"city": "Rome"}),
    )

    conversation += [
        Message("assistant", first.text, tool_calls=first.tool_calls),
        Message("tool", "18C", tool_call_id="toolu_a", name="weather"),
        Message("tool", "24C", tool_call_id="toolu_b", name="weather"),
    ]
    second = await provider.complete(
        CompletionRequest(model=MODEL, messages=conversation, tools=[WEATHER])
    )
    assert second.text == "Paris 18C, Rome 24C."
    assert second.finish_reason == "stop"

    body = fake.requests[1].body
    assert body["system"] == "You report the weather."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_a",
                    "name": "weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_b", "name": "weather", "input": {"city": "Rome"}},
            ],
        },
        {
            # Both results in one user turn, as the API requires.
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": "24C"},
            ],
        },
    ]
    assert body["tools"][0]["input_schema"] == dict(WEATHER.parameters)


async def test_response_formats(fake: FakeAnthropic, make: Maker) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    answer = message([text_block('{"n": 1}')], input_tokens=5, output_tokens=5)
    fake.reply(Reply(body=answer), Reply(body=answer))
    provider = make()
    await provider.complete(
        ask(response_format={"type": "json_schema", "name": "count", "schema": schema})
    )
    await provider.complete(ask(response_format={"type": "json_object"}))
    structured, json_object = (sent.body for sent in fake.requests)
    assert structured["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "JSON object" in json_object["system"]
    assert "output_config" not in json_object


# -- errors --------------------------------------------------------------------------------


async def test_a_429_is_rate_limited_with_retry_after(fake: FakeAnthropic, make: Maker) -> None:
    fake.reply(
        Reply(
            status=429,
            body=error("rate_limit_error", "Number of requests has exceeded your rate limit"),
            headers={"retry-after": "7", **RATE_LIMITS},
        )
    )
    failure = await fails(make(), ask())
    assert (failure.kind, failure.status, failure.retry_after) == ("rate_limited", 429, 7.0)
    assert failure.code == "provider.rate_limited"
    assert not failure.charge_reservation
    assert len(fake.requests) == 1, "the SDK must not retry: Podium does"


@pytest.mark.parametrize(
    ("status", "kind", "error_type"),
    [
        (529, "overloaded", "overloaded_error"),
        (500, "server_error", "api_error"),
        (503, "server_error", "api_error"),
        (400, "bad_request", "invalid_request_error"),
        (404, "bad_request", "not_found_error"),
        (413, "bad_request", "request_too_large"),
        (422, "bad_request", "invalid_request_error"),
        (401, "authentication", "authentication_error"),
        (403, "authentication", "permission_error"),
    ],
)
async def test_statuses_map_to_kinds(
    fake: FakeAnthropic, make: Maker, status: int, kind: str, error_type: str
) -> None:
    fake.reply(Reply(status=status, body=error(error_type, "nope")))
    failure = await fails(make(), ask())
    assert (failure.kind, failure.status) == (kind, status)
    assert "nope" in str(failure)
    assert len(fake.requests) == 1


async def test_a_slow_first_byte_is_a_timeout(fake: FakeAnthropic, make: Maker) -> None:
    # A reply no busy machine gets to before the client's timeout fires.
    fake.reply(Reply(body=message([], input_tokens=1, output_tokens=1), delay=30.0))
    failure = await fails(make(timeout=0.3), ask())
    assert failure.kind == "timeout"
    assert not failure.charge_reservation


async def test_an_unreachable_endpoint_is_a_connection_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = AnthropicProvider()
    provider.configure({"api_key": "test-key", "base_url": f"http://127.0.0.1:{port}"})
    try:
        failure = await fails(provider, ask())
    finally:
        await provider.aclose()
    assert failure.kind == "connection"


async def test_no_key_is_an_authentication_failure_and_no_call(fake: FakeAnthropic) -> None:
    provider = AnthropicProvider()  # starts without a key
    provider.configure({"base_url": fake.base_url})
    failure = await fails(provider, ask())
    assert failure.kind == "authentication"
    assert "api_key" in str(failure)
    assert fake.requests == []


async def test_the_environment_supplies_key_and_endpoint(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    fake.reply(Reply(body=message([text_block("ok")], input_tokens=1, output_tokens=1)))
    provider = AnthropicProvider()
    try:
        completion = await provider.complete(ask())
    finally:
        await provider.aclose()
    assert completion.text == "ok"
    headers = fake.requests[0].headers
    assert "env-key" in headers.get("x-api-key", "") + headers.get("authorization", "")


# -- settings ------------------------------------------------------------------------------


def test_settings_override_and_add_prices() -> None:
    provider = AnthropicProvider()
    provider.configure(
        {
            "models": {
                MODEL: {"input": "0.8", "output": 4, "cached_input": 0.08, "cache_write": 1},
                "claude-custom": {"input": 2, "output": 10},
            }
        }
    )
    price = provider.price(MODEL)
    assert price is not None
    assert (price.input, price.output, price.cached_input, price.cache_write) == (
        Decimal("0.8"),
        Decimal(4),
        Decimal("0.08"),
        Decimal(1),
    )
    assert "claude-custom" in provider.models
    assert "claude-sonnet-4-5" in provider.models
    assert provider.price("claude-unknown") is None


@pytest.mark.parametrize(
    "settings",
    [
        {"api_key": ""},
        {"organization": "x"},
        {"timeout": 0},
        {"timeout": "fast"},
        {"max_tokens": 1.5},
        {"models": {MODEL: {"input": -1, "output": 1}}},
        {"models": {MODEL: {"output": 1}}},
        {"models": {MODEL: {"input": 1, "output": 1, "reasoning": 2}}},
        {"api_key_env": "PODIUM_TEST_NO_SUCH_VARIABLE"},
    ],
)
def test_bad_settings_are_refused_and_change_nothing(settings: dict[str, Any]) -> None:
    provider = AnthropicProvider()
    provider.configure({"models": {"claude-custom": {"input": 2, "output": 10}}})
    with pytest.raises(ValueError):
        provider.configure(settings)
    assert provider.price("claude-custom") is not None
    assert provider.price(MODEL) == PRICES[MODEL]


def test_api_key_env_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_TEST_ANTHROPIC_KEY", "from-env")
    provider = AnthropicProvider()
    provider.configure({"api_key_env": "PODIUM_TEST_ANTHROPIC_KEY"})
    assert provider._api_key == "from-env"


# -- discovery -----------------------------------------------------------------------------


def test_the_installed_distribution_registers_the_provider() -> None:
    report = load_plugins()
    status = report.plugin("anthropic")
    assert status is not None, [plugin.name for plugin in report.plugins]
    assert (status.status, status.distribution, status.providers) == (
        "loaded",
        "podium-anthropic",
        ("anthropic",),
    )
    provider = report.registry.provider("anthropic")
    assert isinstance(provider, AnthropicProvider)
