"""DirectLlmGateway and ScriptedProvider (podium.testing.fake_llm): the
governed gateway's observable contract without governance (the default
max_tokens, costs from the provider's price, fallbacks on an outage only),
and replies played back in order."""

from __future__ import annotations

from decimal import Decimal

import pytest

from podium.governance.gate import DEFAULT_MAX_TOKENS as GATEWAY_DEFAULT_MAX_TOKENS
from podium.plugins.api import (
    CompletionRequest,
    Message,
    ModelPrice,
    Provider,
    ProviderError,
    Target,
    ToolCall,
    Usage,
)
from podium.plugins.builtin.simulated_provider import SimulatedProvider
from podium.testing import DirectLlmGateway, ScriptedProvider, text_reply, tool_calls_reply
from podium.testing.fake_llm import DEFAULT_MAX_TOKENS

HELLO = [Message("user", "hello")]
PRICE = ModelPrice(input=Decimal(2), output=Decimal(10))


def test_it_sends_what_the_governed_gateway_sends_for_an_unset_max_tokens() -> None:
    assert DEFAULT_MAX_TOKENS == GATEWAY_DEFAULT_MAX_TOKENS


def test_a_scripted_provider_is_a_provider_a_server_accepts() -> None:
    assert isinstance(ScriptedProvider(), Provider)


async def test_a_call_is_priced_and_recorded() -> None:
    provider = ScriptedProvider(
        text_reply("Hi!", input_tokens=1000, output_tokens=100), name="acme", price=PRICE
    )
    gateway = DirectLlmGateway([provider])
    result = await gateway.complete("acme", CompletionRequest("m1", HELLO))
    assert result.completion.text == "Hi!"
    assert (result.provider, result.model) == ("acme", "m1")
    assert result.cost == Decimal("0.003")  # 1000 x $2/M + 100 x $10/M
    [call] = gateway.calls
    assert (call.provider, call.completion, call.error) == ("acme", result.completion, None)
    assert call.request.max_tokens == DEFAULT_MAX_TOKENS
    assert provider.requests == [call.request]
    assert provider.pending == 0


async def test_an_unpriced_model_costs_nothing() -> None:
    gateway = DirectLlmGateway([ScriptedProvider(text_reply("free"))])
    result = await gateway.complete("scripted", CompletionRequest("scripted", HELLO))
    assert result.cost == 0


async def test_an_outage_falls_back_and_a_caller_error_does_not() -> None:
    down = ScriptedProvider(
        ProviderError("boom", kind="server_error", status=500),
        ProviderError("bad", kind="bad_request", status=400),
        name="down",
    )
    gateway = DirectLlmGateway([down, SimulatedProvider(latency_ms=0)])
    fallbacks = [Target("simulated", "sim-small")]
    result = await gateway.complete("down", CompletionRequest("m", HELLO), fallbacks=fallbacks)
    assert (result.provider, result.model) == ("simulated", "sim-small")
    assert [(c.provider, c.request.model) for c in gateway.calls] == [
        ("down", "m"),
        ("simulated", "sim-small"),
    ]
    assert isinstance(gateway.calls[0].error, ProviderError)
    # A bad request would be as bad anywhere: no fallback.
    with pytest.raises(ProviderError) as raised:
        await gateway.complete("down", CompletionRequest("m", HELLO), fallbacks=fallbacks)
    assert raised.value.kind == "bad_request"
    assert len(gateway.calls) == 3


async def test_an_unknown_provider_is_a_bad_request() -> None:
    gateway = DirectLlmGateway([SimulatedProvider(latency_ms=0)])
    with pytest.raises(ProviderError) as raised:
        await gateway.complete("openai", CompletionRequest("gpt-4o", HELLO))
    assert raised.value.kind == "bad_request"
    assert "simulated" in str(raised.value)


async def test_scripted_replies_play_in_order_and_running_out_fails_loudly() -> None:
    call = ToolCall("call_1", "calculator", {"expression": "1 + 1"})
    provider = ScriptedProvider(tool_calls_reply(call))
    provider.reply(text_reply("2"))
    first = await provider.complete(CompletionRequest("scripted", HELLO))
    assert (first.finish_reason, list(first.tool_calls)) == ("tool_calls", [call])
    assert first.usage == Usage(calls=1)
    assert (await provider.complete(CompletionRequest("scripted", HELLO))).text == "2"
    with pytest.raises(AssertionError, match="no scripted reply left for call 3"):
        await provider.complete(CompletionRequest("scripted", HELLO))
