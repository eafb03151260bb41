"""The builtin simulated provider: deterministic answers and token counts,
Decimal prices, real but overridable and cancellable latency, injected
faults (reproducible with a seed)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest

from podium.plugins.api import (
    CompletionRequest,
    Message,
    ProviderError,
    ToolCall,
    ToolSpec,
    Usage,
)
from podium.plugins.builtin import (
    SimulatedProvider,
)


def request(text: str, model: str = "sim-small", **options: Any) -> CompletionRequest:
    return CompletionRequest(model=model, messages=[Message("user", text)], options=options)


async def test_simulated_is_deterministic_and_counts_tokens() -> None:
    text = "Summarize the quarterly report in three bullet points please"
    first = await SimulatedProvider(latency_ms=0).complete(request(text))
    second = await SimulatedProvider(latency_ms=0).complete(request(text))
    assert first == second
    assert first.text.startswith("[sim-small] ")
    assert "Summarize the quarterly report" in first.text
    assert first.finish_reason == "stop"
    assert first.usage.input_tokens == -(-len(text) // 4)
    assert first.usage.output_tokens == -(-len(first.text) // 4)
    other = await SimulatedProvider(latency_ms=0).complete(request("something else"))
    assert other.text != first.text


async def test_simulated_counts_every_message_and_at_least_one_token() -> None:
    messages = [Message("system", "s" * 10), Message("user", "u" * 7)]
    completion = await SimulatedProvider(latency_ms=0).complete(
        CompletionRequest(model="sim-large", messages=messages)
    )
    assert completion.usage.input_tokens == 5
    empty = await SimulatedProvider(latency_ms=0).complete(request(""))
    assert empty.usage.input_tokens == 1


def test_simulated_prices_with_decimal() -> None:
    provider = SimulatedProvider()
    small, large = provider.price("sim-small"), provider.price("sim-large")
    assert small is not None and large is not None
    assert small.cost(Usage(input_tokens=1_000_000, output_tokens=1_000_000)) == Decimal("2.00")
    assert large.cost(Usage(input_tokens=1000, output_tokens=100)) == Decimal("0.0045")
    assert provider.price("gpt-17") is None
    assert set(provider.models) == {"sim-small", "sim-large"}


async def test_simulated_rejects_an_unknown_model_listing_the_known_ones() -> None:
    with pytest.raises(ProviderError) as error:
        await SimulatedProvider(latency_ms=0).complete(request("hi", model="gpt-17"))
    assert error.value.kind == "bad_request"
    assert "sim-small" in str(error.value) and "sim-large" in str(error.value)


async def test_simulated_truncates_at_max_tokens() -> None:
    req = CompletionRequest("sim-small", [Message("user", "word " * 50)], max_tokens=3)
    completion = await SimulatedProvider(latency_ms=0).complete(req)
    assert completion.finish_reason == "length"
    assert completion.usage.output_tokens == 3
    assert len(completion.text) == 12


async def test_simulated_latency_is_real_overridable_and_cancellable() -> None:
    default_s = 60
    provider = SimulatedProvider(latency_ms=default_s * 1000)
    started = time.monotonic()
    await provider.complete(request("fast", latency_ms=30))
    # At least the 30 ms asked for, and not the provider's default minute.
    assert 0.025 <= time.monotonic() - started < default_s
    task = asyncio.create_task(provider.complete(request("slow")))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_simulated_fails_the_first_times_with_the_chosen_fault() -> None:
    provider = SimulatedProvider(latency_ms=0)
    req = request("retry me", fail_with="rate_limited", fail_times=2, retry_after=3)
    for _ in range(2):
        with pytest.raises(ProviderError) as error:
            await provider.complete(req)
        assert (error.value.kind, error.value.status, error.value.retry_after) == (
            "rate_limited",
            429,
            3.0,
        )
        assert error.value.code == "provider.rate_limited"
    assert (await provider.complete(req)).text
    # Another request has its own count.
    with pytest.raises(ProviderError) as overloaded:
        await provider.complete(request("another", fail_with="overloaded", fail_times=1))
    assert (overloaded.value.kind, overloaded.value.status) == ("overloaded", 529)
    with pytest.raises(ProviderError) as timeout:
        await provider.complete(request("late", fail_with="timeout"))
    assert (timeout.value.kind, timeout.value.status) == ("timeout", None)


async def test_simulated_fail_rate_is_reproducible_with_a_seed() -> None:
    async def outcomes(seed: int) -> list[str]:
        provider = SimulatedProvider(latency_ms=0)
        result = []
        for _ in range(200):
            try:
                await provider.complete(request("same", fail_rate=0.25, seed=seed))
                result.append("ok")
            except ProviderError as error:
                assert (error.kind, error.status) == ("server_error", 500)
                result.append("fail")
        return result

    first = await outcomes(1)
    assert first == await outcomes(1)
    assert first != await outcomes(2)
    assert 0.15 < first.count("fail") / len(first) < 0.35


async def test_simulated_rejects_bad_fault_options() -> None:
    with pytest.raises(ProviderError) as error:
        await SimulatedProvider(latency_ms=0).complete(request("x", fail_with="meteor"))
    assert error.value.kind == "bad_request"


async def test_simulated_usage_counts_one_call() -> None:
    completion = await SimulatedProvider(latency_ms=0).complete(request("hi"))
    assert completion.usage.calls == 1
    assert completion.model == "sim-small"


def calls(*names_and_arguments: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"tool_calls": [{"name": n, "arguments": a} for n, a in names_and_arguments]}


TOOLS = (ToolSpec("calculator", "math", {"type": "object"}),)


def scripted(messages: list[Message], script: Any, **fields: Any) -> CompletionRequest:
    options = {"script": script, "latency_ms": 0}
    return CompletionRequest(
        model="sim-small", messages=messages, options=options, **{"tools": TOOLS, **fields}
    )


async def test_the_script_turn_is_the_number_of_assistant_messages() -> None:
    provider = SimulatedProvider(latency_ms=0)
    script = [
        calls(("calculator", {"expression": "1 + 1"}), ("calculator", {"expression": "2"})),
        calls(("calculator", {"x": ["$last_result", "got $last_result"], "y": 1})),
        {"text": "answer: $last_result"},
    ]
    conversation = [Message("user", "go")]
    first = await provider.complete(scripted(conversation, script))
    assert first.finish_reason == "tool_calls" and first.text == ""
    assert list(first.tool_calls) == [
        ToolCall("call_0_0", "calculator", {"expression": "1 + 1"}),
        ToolCall("call_0_1", "calculator", {"expression": "2"}),
    ]
    assert first.usage.output_tokens > 0
    conversation += [
        Message("assistant", "", tool_calls=first.tool_calls),
        Message("tool", "2", tool_call_id="call_0_0", name="calculator"),
        Message("tool", '{"v": [1]}', tool_call_id="call_0_1", name="calculator"),
    ]
    second = await provider.complete(scripted(conversation, script))
    assert [c.id for c in second.tool_calls] == ["call_1_0"]
    assert second.tool_calls[0].arguments == {"x": [{"v": [1]}, 'got {"v": [1]}'], "y": 1}
    # Tool messages and tool calls count as input.
    assert second.usage.input_tokens > first.usage.input_tokens
    conversation += [
        Message("assistant", "", tool_calls=second.tool_calls),
        Message("tool", '"forty-two"', tool_call_id="call_1_0", name="calculator"),
    ]
    third = await provider.complete(scripted(conversation, script))
    assert (third.text, third.finish_reason) == ("answer: forty-two", "stop")
    assert not third.tool_calls
    # Past the end of the script: the usual answer.
    conversation.append(Message("assistant", third.text))
    fourth = await provider.complete(scripted(conversation, script))
    assert fourth.text.startswith("[sim-small] Simulated answer") and not fourth.tool_calls


async def test_the_script_needs_tools_in_the_request() -> None:
    provider = SimulatedProvider(latency_ms=0)
    request = scripted([Message("user", "go")], [calls(("calculator", {}))], tools=())
    completion = await provider.complete(request)
    assert completion.finish_reason == "stop" and not completion.tool_calls


async def test_a_tool_call_cut_short_by_max_tokens_is_no_call() -> None:
    provider = SimulatedProvider(latency_ms=0)
    script = [calls(("calculator", {"expression": "1 + " * 50 + "1"}))]
    completion = await provider.complete(scripted([Message("user", "go")], script, max_tokens=5))
    assert completion.finish_reason == "length"
    assert not completion.tool_calls
    assert completion.usage.output_tokens == 5


@pytest.mark.parametrize(
    "script",
    [
        "calculator",
        [{"tool_calls": []}],
        [{"tool_calls": [{"arguments": {}}]}],
        [{"tool_calls": [{"name": "calculator", "arguments": [1]}]}],
        [{"tool_calls": [{"name": "calculator", "extra": 1}]}],
        [{"text": "a", "tool_calls": [{"name": "calculator"}]}],
        [{"say": "a"}],
        ["a"],
    ],
)
async def test_a_malformed_script_is_a_bad_request(script: Any) -> None:
    provider = SimulatedProvider(latency_ms=0)
    with pytest.raises(ProviderError) as error:
        await provider.complete(scripted([Message("user", "go")], script))
    assert error.value.kind == "bad_request"
    assert "script" in str(error.value)
