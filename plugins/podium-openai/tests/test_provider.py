"""The `openai` provider plugin: the real openai SDK talks real HTTP to a
fake OpenAI server on 127.0.0.1 (podium_openai.testing), for both the Chat
Completions and the Responses API. Checked: what the SDK sent, the
Completion, usage in Podium's convention and its exact cost, each fault's
ProviderError, and discovery through the installed distribution. One run
through a real Podium server: test_through_server.py."""

from __future__ import annotations

import asyncio
import importlib.metadata
import socket
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
from podium_openai import OpenAIProvider
from podium_openai.prices import PRICES
from podium_openai.testing import (
    FakeOpenAI,
    Reply,
    chat_chunks,
    chat_completion,
    chat_usage,
    error,
    function_call,
    response,
    response_events,
    response_usage,
    tool_call,
)
from podium_openai.usage import UNPARSED_ARGUMENTS

from podium.governance.prices import Price
from podium.plugins.api import (
    Completion,
    CompletionRequest,
    Message,
    ModelPrice,
    ProviderError,
    ToolCall,
    ToolSpec,
    Usage,
)
from podium.plugins.manager import load_plugins
from podium.v1 import control_service_pb2, event_pb2, run_pb2

E = event_pb2
R = run_pb2

C = control_service_pb2
HELLO = (Message("system", "Be brief."), Message("user", "Say hello"))
WEATHER = ToolSpec(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
LIMIT_HEADERS = {"x-ratelimit-remaining-requests": "99", "x-ratelimit-remaining-tokens": "9000"}


MakeProvider = Callable[..., OpenAIProvider]


@pytest.fixture
async def make_provider(fake: FakeOpenAI) -> AsyncIterator[MakeProvider]:
    """Providers with an API key and the fake's URL (`settings` are added to
    them or replace them; None removes one), closed after the test."""
    made: list[OpenAIProvider] = []

    def make(**settings: Any) -> OpenAIProvider:
        chosen = {"api_key": "test", "base_url": fake.base_url, **settings}
        provider = OpenAIProvider(
            {key: value for key, value in chosen.items() if value is not None}
        )
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


def responses_api(make_provider: MakeProvider, *models: str) -> OpenAIProvider:
    return make_provider(models={model: {"api": "responses"} for model in models})


def cost(provider: OpenAIProvider, model: str, usage: Usage) -> Decimal:
    """What governance charges: the plugin's price as governance's Price."""
    price = provider.price(model)
    assert price is not None
    return Price.from_model_price(price).cost(usage)


async def fails(provider: OpenAIProvider, request: CompletionRequest) -> ProviderError:
    with pytest.raises(ProviderError) as raised:
        await provider.complete(request)
    return raised.value


# -- the distribution -------------------------------------------------------------------


def test_the_entry_point_comes_from_the_installed_distribution() -> None:
    found = {ep.name: ep for ep in importlib.metadata.entry_points(group="podium")}
    assert "openai" in found
    assert found["openai"].value == "podium_openai.plugin"
    assert found["openai"].dist is not None
    assert found["openai"].dist.name == "podium-openai"

    status = load_plugins().plugin("openai")
    assert status is not None
    assert (status.status, status.error) == ("loaded", "")
    assert status.distribution == "podium-openai"
    assert status.version == importlib.metadata.version("podium-openai")
    assert status.providers == ("openai",)


def test_prices_per_million_tokens() -> None:
    provider = OpenAIProvider()
    assert set(PRICES) <= set(provider.models)
    assert provider.price("gpt-4o-mini") == ModelPrice(
        Decimal("0.15"), Decimal("0.60"), Decimal("0.075")
    )
    assert provider.price("gpt-4o") == ModelPrice(Decimal("2.50"), Decimal("10"), Decimal("1.25"))
    assert provider.price("no-such-model") is None


def test_configure_overrides_prices_and_adds_models() -> None:
    provider = OpenAIProvider()
    provider.configure(
        {
            "models": {
                "gpt-4o": {"price": {"input": 2, "output": "8.5", "cached_input": 0.1}},
                "my-finetune": {"api": "responses", "price": {"input": 1, "output": 2}},
            }
        }
    )
    assert provider.price("gpt-4o") == ModelPrice(Decimal(2), Decimal("8.5"), Decimal("0.1"))
    assert provider.price("my-finetune") == ModelPrice(Decimal(1), Decimal(2))
    assert provider.price("gpt-4o-mini") == PRICES["gpt-4o-mini"]
    assert "my-finetune" in provider.models


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"api_keys": "x"}, "unknown setting api_keys"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "fast"}, "timeout"),
        ({"api_key": ""}, "api_key"),
        ({"models": {"gpt-4o": {"api": "completions"}}}, "models.gpt-4o.api"),
        ({"models": {"gpt-4o": {"price": {"input": 1}}}}, "models.gpt-4o.price"),
        ({"models": {"gpt-4o": {"price": {"input": -1, "output": 1}}}}, "price.input"),
        ({"models": {"gpt-4o": {"prices": {}}}}, "unknown setting models.gpt-4o.prices"),
    ],
)
def test_bad_settings_are_refused_and_change_nothing(
    settings: dict[str, Any], problem: str
) -> None:
    provider = OpenAIProvider({"models": {"gpt-4o": {"price": {"input": 1, "output": 1}}}})
    with pytest.raises(ValueError, match=problem.replace(".", r"\.")):
        provider.configure(settings)
    assert provider.price("gpt-4o") == ModelPrice(Decimal(1), Decimal(1))


# -- Chat Completions -------------------------------------------------------------------


async def test_a_plain_chat_completion(fake: FakeOpenAI, make_provider: MakeProvider) -> None:
    provider = make_provider()
    fake.reply(Reply(body=chat_completion("Hi there."), headers=LIMIT_HEADERS))
    request = CompletionRequest("gpt-4o-mini", HELLO, max_tokens=64, temperature=0.2)

    completion = await provider.complete(request)

    assert completion == Completion(
        text="Hi there.",
        usage=Usage(input_tokens=10, output_tokens=5, calls=1),
        finish_reason="stop",
        model="gpt-4o-mini",
        remaining_requests=99,
        remaining_tokens=9000,
    )
    [sent] = fake.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer test"
    assert sent.body == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
    }
    # 10 input tokens at $0.15/M, 5 output tokens at $0.60/M.
    assert cost(provider, "gpt-4o-mini", completion.usage) == Decimal("0.0000045")


async def test_cached_tokens_are_a_subset_of_the_prompt(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    provider = make_provider()
    usage = chat_usage(2000, 100, cached=1500)
    fake.reply(Reply(body=chat_completion("ok", model="gpt-4o", usage=usage)))

    completion = await provider.complete(CompletionRequest("gpt-4o", HELLO))

    assert completion.usage == Usage(
        input_tokens=2000, output_tokens=100, cached_input_tokens=1500, calls=1
    )
    # 500 uncached at $2.50/M + 1500 cached at $1.25/M + 100 output at $10/M.
    expected = Decimal("0.004125")
    assert cost(provider, "gpt-4o", completion.usage) == expected
    price = provider.price("gpt-4o")
    assert price is not None and price.cost(completion.usage) == expected


async def test_reasoning_tokens_are_part_of_the_output(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    provider = make_provider()
    usage = chat_usage(100, 500, reasoning=400)
    fake.reply(Reply(body=chat_completion("42", model="o4-mini", usage=usage)))

    completion = await provider.complete(CompletionRequest("o4-mini", HELLO, max_tokens=1000))

    assert completion.usage == Usage(
        input_tokens=100, output_tokens=500, reasoning_tokens=400, calls=1
    )
    # Reasoning models take max_completion_tokens; max_tokens is refused.
    assert fake.bodies()[0]["max_completion_tokens"] == 1000
    assert "max_tokens" not in fake.bodies()[0]
    # 100 input at $1.10/M + 500 output (reasoning included) at $4.40/M.
    assert cost(provider, "o4-mini", completion.usage) == Decimal("0.00231")
    # Were reasoning priced apart, only the 100 visible tokens stay at the output rate.
    price = provider.price("o4-mini")
    assert price is not None
    separate = Price(price.input, price.output, price.cached_input, reasoning=Decimal("8.80"))
    assert separate.cost(completion.usage) == Decimal("0.00407")


async def test_cache_writes_move_out_of_the_input_tokens(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    provider = make_provider(
        models={"gpt-4.1": {"price": {"input": 2, "output": 8, "cache_write": 3}}}
    )
    usage = chat_usage(1000, 10, cached=200, cache_write=300)
    fake.reply(Reply(body=chat_completion("ok", model="gpt-4.1", usage=usage)))

    completion = await provider.complete(CompletionRequest("gpt-4.1", HELLO))

    assert completion.usage == Usage(
        input_tokens=700, output_tokens=10, cached_input_tokens=200, cache_write_tokens=300, calls=1
    )
    # 700 input at $2/M (no cached_input rate: the input one) + 300 written at $3/M + 10 at $8/M.
    assert cost(provider, "gpt-4.1", completion.usage) == Decimal("0.00238")


async def test_a_streamed_chat_completion(fake: FakeOpenAI, make_provider: MakeProvider) -> None:
    provider = make_provider()
    usage = chat_usage(30, 4, cached=10)
    fake.reply(Reply(events=chat_chunks(("Hel", "lo", "!"), usage=usage), headers=LIMIT_HEADERS))

    completion = await provider.complete(
        CompletionRequest("gpt-4o-mini", HELLO, max_tokens=16, stream=True)
    )

    assert completion == Completion(
        text="Hello!",
        usage=Usage(input_tokens=30, output_tokens=4, cached_input_tokens=10, calls=1),
        finish_reason="stop",
        model="gpt-4o-mini",
        remaining_requests=99,
        remaining_tokens=9000,
    )
    body = fake.bodies()[0]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 16
    # 20 at $0.15/M + 10 cached at $0.075/M + 4 at $0.60/M.
    assert cost(provider, "gpt-4o-mini", completion.usage) == Decimal("0.00000615")


async def test_a_tool_calling_turn_and_its_follow_up(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    provider = make_provider()
    call = tool_call("call_1", "get_weather", {"city": "Paris"})
    fake.reply(
        Reply(body=chat_completion(None, tool_calls=[call], usage=chat_usage(50, 12))),
        Reply(body=chat_completion("Sunny in Paris.", usage=chat_usage(80, 6))),
    )
    question = Message("user", "Weather in Paris?")

    first = await provider.complete(CompletionRequest("gpt-4o-mini", [question], tools=[WEATHER]))

    assert first.text == ""
    assert first.finish_reason == "tool_calls"
    assert list(first.tool_calls) == [ToolCall("call_1", "get_weather", {"city": "Paris"})]
    assert fake.bodies()[0]["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": dict(WEATHER.parameters),
            },
        }
    ]

    follow_up = [
        question,
        Message("assistant", "", tool_calls=first.tool_calls),
        Message("tool", '{"sky": "sunny"}', tool_call_id="call_1", name="get_weather"),
    ]
    second = await provider.complete(CompletionRequest("gpt-4o-mini", follow_up, tools=[WEATHER]))

    assert second.text == "Sunny in Paris."
    assert second.finish_reason == "stop"
    assert second.usage == Usage(input_tokens=80, output_tokens=6, calls=1)
    assert fake.bodies()[1]["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "sunny"}'},
    ]


async def test_streamed_tool_calls_are_assembled(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    provider = make_provider()
    calls = [
        tool_call("call_a", "get_weather", {"city": "Paris"}),
        tool_call("call_b", "get_weather", {"city": "Oslo"}),
    ]
    fake.reply(Reply(events=chat_chunks((), tool_calls=calls)))

    completion = await provider.complete(
        CompletionRequest("gpt-4o-mini", HELLO, tools=[WEATHER], stream=True)
    )

    assert completion.finish_reason == "tool_calls"
    assert list(completion.tool_calls) == [
        ToolCall("call_a", "get_weather", {"city": "Paris"}),
        ToolCall("call_b", "get_weather", {"city": "Oslo"}),
    ]


async def test_arguments_that_are_no_json_object_are_kept_raw(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    provider = make_provider()
    cut = tool_call("call_1", "get_weather", '{"city": "Pa')
    fake.reply(Reply(body=chat_completion(None, tool_calls=[cut], finish_reason="length")))

    completion = await provider.complete(CompletionRequest("gpt-4o-mini", HELLO))

    assert completion.finish_reason == "length"
    assert completion.tool_calls[0].arguments == {UNPARSED_ARGUMENTS: '{"city": "Pa'}
    assert completion.usage.calls == 1  # still billed, still recorded


async def test_response_format_and_options(fake: FakeOpenAI, make_provider: MakeProvider) -> None:
    provider = make_provider()
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    request = CompletionRequest(
        "gpt-4o-mini",
        HELLO,
        response_format={"type": "json_schema", "name": "answer", "schema": schema},
        # Known options are sent; others (another provider's) are not.
        options={"seed": 7, "reasoning_effort": "low", "latency_ms": 5},
    )

    await provider.complete(request)

    body = fake.bodies()[0]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema},
    }
    assert body["seed"] == 7
    assert body["reasoning_effort"] == "low"
    assert "latency_ms" not in body


# -- Responses API ------------------------------------------------------------------------


async def test_a_plain_response(fake: FakeOpenAI, make_provider: MakeProvider) -> None:
    provider = responses_api(make_provider, "gpt-4.1")
    usage = response_usage(1200, 300, cached=1000, reasoning=200)
    fake.reply(Reply(body=response("Hi.", usage=usage, reasoning=True), headers=LIMIT_HEADERS))

    completion = await provider.complete(
        CompletionRequest("gpt-4.1", HELLO, max_tokens=500, temperature=0)
    )

    assert completion == Completion(
        text="Hi.",
        usage=Usage(
            input_tokens=1200,
            output_tokens=300,
            cached_input_tokens=1000,
            reasoning_tokens=200,
            calls=1,
        ),
        finish_reason="stop",
        model="gpt-4.1",
        remaining_requests=99,
        remaining_tokens=9000,
    )
    [sent] = fake.requests
    assert sent.path == "/v1/responses"
    assert sent.body == {
        "model": "gpt-4.1",
        "input": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"},
        ],
        "max_output_tokens": 500,
        "temperature": 0,
    }
    # 200 at $2/M + 1000 cached at $0.50/M + 300 output (reasoning included) at $8/M.
    assert cost(provider, "gpt-4.1", completion.usage) == Decimal("0.0033")


async def test_a_responses_tool_turn_and_its_follow_up(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    provider = responses_api(make_provider, "gpt-4.1")
    fake.reply(
        Reply(
            body=response(None, calls=[function_call("call_1", "get_weather", {"city": "Rome"})])
        ),
        Reply(body=response("Warm in Rome.")),
    )
    question = Message("user", "Weather in Rome?")

    first = await provider.complete(CompletionRequest("gpt-4.1", [question], tools=[WEATHER]))

    assert first.finish_reason == "tool_calls"
    assert list(first.tool_calls) == [ToolCall("call_1", "get_weather", {"city": "Rome"})]
    assert fake.bodies()[0]["tools"] == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": dict(WEATHER.parameters),
            "strict": False,
        }
    ]

    follow_up = [
        question,
        Message("assistant", "", tool_calls=first.tool_calls),
        Message("tool", "warm", tool_call_id="call_1", name="get_weather"),
    ]
    second = await provider.complete(CompletionRequest("gpt-4.1", follow_up, tools=[WEATHER]))

    assert (second.text, second.finish_reason) == ("Warm in Rome.", "stop")
    assert fake.bodies()[1]["input"] == [
        {"role": "user", "content": "Weather in Rome?"},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city": "Rome"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "warm"},
    ]


async def test_a_streamed_response_takes_usage_from_the_completed_event(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    provider = responses_api(make_provider, "o4-mini")
    final = response("Hello!", model="o4-mini", usage=response_usage(40, 90, reasoning=64))
    fake.reply(Reply(events=response_events(final), headers=LIMIT_HEADERS))

    completion = await provider.complete(CompletionRequest("o4-mini", HELLO, stream=True))

    assert completion.text == "Hello!"
    assert completion.usage == Usage(
        input_tokens=40, output_tokens=90, reasoning_tokens=64, calls=1
    )
    assert (completion.remaining_requests, completion.remaining_tokens) == (99, 9000)
    assert fake.bodies()[0]["stream"] is True
    # 40 at $1.10/M + 90 at $4.40/M.
    assert cost(provider, "o4-mini", completion.usage) == Decimal("0.000440")


async def test_an_incomplete_response_finished_on_length(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    provider = responses_api(make_provider, "gpt-4.1")
    cut = response("Once upon", status="incomplete", incomplete_reason="max_output_tokens")
    fake.reply(Reply(events=response_events(cut, ("Once", " upon"))))

    completion = await provider.complete(
        CompletionRequest("gpt-4.1", HELLO, max_tokens=2, stream=True)
    )

    assert (completion.text, completion.finish_reason) == ("Once upon", "length")


async def test_a_json_schema_for_the_responses_api(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    provider = responses_api(make_provider, "gpt-4.1")
    schema = {"type": "object"}
    await provider.complete(
        CompletionRequest(
            "gpt-4.1",
            HELLO,
            response_format={"type": "json_schema", "name": "out", "schema": schema},
            options={"reasoning_effort": "high", "seed": 1},
        )
    )
    body = fake.bodies()[0]
    assert body["text"] == {"format": {"type": "json_schema", "name": "out", "schema": schema}}
    assert body["reasoning"] == {"effort": "high"}
    assert "seed" not in body  # a Chat Completions option


# -- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "body", "kind", "retry_after"),
    [
        (
            429,
            {"retry-after": "7"},
            error("slow down", "requests", "rate_limit_exceeded"),
            "rate_limited",
            7.0,
        ),
        (
            429,
            {"retry-after-ms": "1500", "retry-after": "9"},
            error("slow", "tokens"),
            "rate_limited",
            1.5,
        ),
        (
            429,
            {
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "1m2.5s",
                "x-ratelimit-remaining-tokens": "100",
                "x-ratelimit-reset-tokens": "20ms",
            },
            error("slow", "requests"),
            "rate_limited",
            62.5,
        ),
        (
            429,
            {},
            error("no credit", "insufficient_quota", "insufficient_quota"),
            "authentication",
            None,
        ),
        (500, {}, error("boom", "server_error"), "server_error", None),
        (502, {}, error("bad gateway", "server_error"), "server_error", None),
        (503, {"retry-after": "3"}, error("busy", "server_error"), "overloaded", 3.0),
        (504, {}, error("gateway timeout", "server_error"), "timeout", None),
        (400, {}, error("bad", "invalid_request_error"), "bad_request", None),
        (404, {}, error("no such model", "invalid_request_error"), "bad_request", None),
        (422, {}, error("unprocessable", "invalid_request_error"), "bad_request", None),
        (401, {}, error("bad key", "invalid_request_error"), "authentication", None),
        (403, {}, error("forbidden", "invalid_request_error"), "authentication", None),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_http_errors(
    fake: FakeOpenAI,
    status: int,
    headers: dict[str, str],
    body: dict[str, Any],
    kind: str,
    retry_after: float | None,
    stream: bool,
    make_provider: MakeProvider,
) -> None:
    provider = make_provider()
    fake.reply(Reply(status=status, body=body, headers=headers))

    failure = await fails(provider, CompletionRequest("gpt-4o-mini", HELLO, stream=stream))

    assert (failure.kind, failure.status) == (kind, status)
    assert failure.retry_after == retry_after
    assert failure.charge_reservation is False
    assert failure.code == f"provider.{kind}"
    assert len(fake.requests) == 1, "the SDK must not retry: governance does"


async def test_an_http_date_retry_after(fake: FakeOpenAI, make_provider: MakeProvider) -> None:
    provider = make_provider()
    fake.reply(
        Reply(
            status=429,
            body=error("slow", "requests"),
            headers={"retry-after": "Thu, 01 Jan 2099 00:00:00 GMT"},
        )
    )
    failure = await fails(provider, CompletionRequest("gpt-4o-mini", HELLO))
    assert failure.kind == "rate_limited"
    assert failure.retry_after is not None and failure.retry_after > 3600


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_a_slow_first_byte_is_a_timeout(
    fake: FakeOpenAI, api: str, make_provider: MakeProvider
) -> None:
    provider = make_provider(timeout=0.2, models={"gpt-4.1": {"api": api}})
    # A reply no busy machine gets to before the client's timeout fires.
    delay = 30.0
    fake.reply(Reply(body=chat_completion(), delay=delay))

    started = asyncio.get_running_loop().time()
    failure = await fails(provider, CompletionRequest("gpt-4.1", HELLO))

    assert asyncio.get_running_loop().time() - started < delay  # it did not wait for the reply
    assert (failure.kind, failure.status, failure.charge_reservation) == ("timeout", None, False)


async def test_no_server_is_a_connection_error(make_provider: MakeProvider) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more.
    provider = make_provider(base_url=f"http://127.0.0.1:{port}/v1")
    failure = await fails(provider, CompletionRequest("gpt-4o-mini", HELLO))
    assert (failure.kind, failure.charge_reservation) == ("connection", False)


async def test_a_chat_stream_dropped_midway_charges_the_reservation(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    provider = make_provider()
    fake.reply(Reply(events=chat_chunks(("a", "b", "c", "d")), break_after=3))

    failure = await fails(provider, CompletionRequest("gpt-4o-mini", HELLO, stream=True))

    assert failure.kind == "connection"
    assert failure.charge_reservation is True


async def test_a_responses_stream_dropped_midway_charges_the_reservation(
    fake: FakeOpenAI,
    make_provider: MakeProvider,
) -> None:
    provider = responses_api(make_provider, "gpt-4.1")
    fake.reply(Reply(events=response_events(response("abc"), ("a", "b", "c")), break_after=2))

    failure = await fails(provider, CompletionRequest("gpt-4.1", HELLO, stream=True))

    assert failure.kind == "connection"
    assert failure.charge_reservation is True


async def test_a_chat_stream_that_ends_without_usage_charges_the_reservation(
    fake: FakeOpenAI,
    make_provider: MakeProvider,
) -> None:
    provider = make_provider()
    # A server that ignores stream_options.include_usage: no usage chunk, then [DONE].
    events = [
        event for event in chat_chunks() if not (event[1] != "[DONE]" and not event[1]["choices"])
    ]
    fake.reply(Reply(events=events))

    failure = await fails(provider, CompletionRequest("gpt-4o-mini", HELLO, stream=True))

    assert failure.kind == "server_error"
    assert failure.charge_reservation is True


async def test_an_error_event_inside_a_chat_stream_charges_the_reservation(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    provider = make_provider()
    started = chat_chunks(("a",))[:2]
    fake.reply(Reply(events=[*started, ("", error("the model crashed", "server_error"))]))

    failure = await fails(provider, CompletionRequest("gpt-4o-mini", HELLO, stream=True))

    assert (failure.kind, failure.charge_reservation) == ("server_error", True)
    assert "the model crashed" in str(failure)


async def test_a_failed_streamed_response_charges_the_reservation(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    provider = responses_api(make_provider, "gpt-4.1")
    failed = response(None, status="failed")
    failed["error"] = {"code": "server_error", "message": "the model crashed"}
    fake.reply(Reply(events=response_events(failed, ("a",))))

    failure = await fails(provider, CompletionRequest("gpt-4.1", HELLO, stream=True))

    assert failure.kind == "server_error"
    assert failure.charge_reservation is True
    assert "the model crashed" in str(failure)


async def test_a_call_without_an_api_key_is_an_authentication_error(
    fake: FakeOpenAI, make_provider: MakeProvider
) -> None:
    provider = make_provider(api_key=None)  # and no OPENAI_API_KEY

    failure = await fails(provider, CompletionRequest("gpt-4o-mini", HELLO))

    assert failure.kind == "authentication"
    assert fake.requests == []


async def test_settings_fall_back_on_the_sdk_environment(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, make_provider: MakeProvider
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    provider = make_provider(api_key=None, base_url=None)  # as the plugin registers it

    completion = await provider.complete(CompletionRequest("gpt-4o-mini", HELLO))

    assert completion.text == "Hello!"
    headers = fake.requests[0].headers
    assert headers["authorization"] == "Bearer from-env"
    assert headers["openai-organization"] == "org-env"
