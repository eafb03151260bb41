"""The builtin plugin's agents, provider and tool, driven the way the engine
drives them: through a StepContext and an LLM gateway."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from podium.plugins import Registry, load_plugins
from podium.plugins.api import (
    Agent,
    AgentError,
    CompletionRequest,
    LlmGateway,
    LlmResult,
    Message,
    Provider,
    ProviderError,
    Target,
    ToolSpec,
    Usage,
    config_problems,
)
from podium.plugins.builtin import (
    EchoAgent,
    FlakyAgent,
    LlmAgent,
    SimulatedProvider,
    TransformAgent,
)
from podium.plugins.builtin.json_query import JSON_QUERY_TOOL


class DirectGateway:
    """Stands in for the engine's governed gateway: calls the provider and prices the call."""

    def __init__(self, providers: Mapping[str, Provider]) -> None:
        self.providers = providers
        self.requests: list[CompletionRequest] = []

    async def complete(
        self,
        provider: str,
        request: CompletionRequest,
        *,
        fallbacks: Sequence[Target] = (),
    ) -> LlmResult:
        self.requests.append(request)
        chosen = self.providers[provider]
        completion = await chosen.complete(request)
        price = chosen.price(request.model)
        cost = price.cost(completion.usage) if price else Decimal(0)
        return LlmResult(completion, provider, completion.model, cost)


@dataclass
class Context:
    input: Any = None
    config: Mapping[str, Any] = field(default_factory=dict)
    attempt: int = 1
    run_id: str = "run-1"
    step_id: str = "step-1"
    llm: LlmGateway = field(default_factory=lambda: DirectGateway({}))
    reports: list[tuple[float, str]] = field(default_factory=list)
    tools: Sequence[ToolSpec] = ()

    def report(self, progress: float, message: str = "") -> None:
        self.reports.append((progress, message))

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> Any:
        raise AgentError(f"no tools in this test context ({name})")


def catalog() -> Registry:
    return load_plugins(include_entry_points=False).registry


def request(text: str, model: str = "sim-small", **options: Any) -> CompletionRequest:
    return CompletionRequest(model=model, messages=[Message("user", text)], options=options)


# echo


async def test_echo_returns_its_input_unchanged() -> None:
    data = {"a": [1, 2, {"b": None}], "c": "d"}
    assert await EchoAgent().run(Context(input=data)) is data


async def test_echo_delay_is_cancellable() -> None:
    task = asyncio.create_task(EchoAgent().run(Context(input=1, config={"delay_ms": 60_000})))
    await asyncio.sleep(0.02)
    assert not task.done()
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 1


async def test_echo_waits_its_delay() -> None:
    started = time.monotonic()
    assert await EchoAgent().run(Context(input="x", config={"delay_ms": 50})) == "x"
    assert time.monotonic() - started >= 0.045


@pytest.mark.parametrize("delay", [-1, "10", True, [1]])
def test_echo_rejects_a_bad_delay(delay: Any) -> None:
    problems = config_problems(EchoAgent(), {"delay_ms": delay}, catalog())
    assert [field for field, _ in problems] == ["delay_ms"]


def test_echo_accepts_a_good_config_and_rejects_unknown_settings() -> None:
    assert config_problems(EchoAgent(), {"delay_ms": 5.0}, catalog()) == []
    assert [f for f, _ in config_problems(EchoAgent(), {"delay": 5}, catalog())] == ["delay"]


async def test_echo_refuses_to_run_with_an_invalid_config() -> None:
    with pytest.raises(AgentError) as error:
        await EchoAgent().run(Context(config={"delay_ms": -5}))
    assert error.value.code == "podium.InvalidConfig"
    assert not error.value.retryable


# flaky


async def test_flaky_fails_exactly_the_first_attempts_with_the_chosen_code() -> None:
    config = {"fail_attempts": 2, "error": "Boom", "message": "kaput"}
    for attempt in (1, 2):
        with pytest.raises(AgentError) as error:
            await FlakyAgent().run(Context(input="in", config=config, attempt=attempt))
        assert error.value.code == "Boom"
        assert str(error.value) == "kaput"
        assert error.value.retryable
    assert await FlakyAgent().run(Context(input="in", config=config, attempt=3)) == "in"


async def test_flaky_fails_the_first_attempt_by_default() -> None:
    with pytest.raises(AgentError) as error:
        await FlakyAgent().run(Context(attempt=1))
    assert error.value.code == "FlakyError"
    assert await FlakyAgent().run(Context(input=7, attempt=2)) == 7


async def _flaky_outcomes(config: Mapping[str, Any], run_id: str, attempts: int) -> list[bool]:
    outcomes = []
    for attempt in range(1, attempts + 1):
        try:
            await FlakyAgent().run(Context(config=config, attempt=attempt, run_id=run_id))
            outcomes.append(True)
        except AgentError:
            outcomes.append(False)
    return outcomes


async def test_flaky_probability_is_reproducible_and_roughly_right() -> None:
    config = {"fail_probability": 0.3}
    first = await _flaky_outcomes(config, "run-a", 400)
    assert first == await _flaky_outcomes(config, "run-a", 400)
    assert first != await _flaky_outcomes(config, "run-b", 400)
    assert 0.2 < first.count(False) / len(first) < 0.4
    assert all(await _flaky_outcomes({"fail_probability": 0}, "run-a", 50))
    assert not any(await _flaky_outcomes({"fail_probability": 1}, "run-a", 50))


def test_flaky_checks_its_config() -> None:
    bad = {"fail_attempts": -1, "fail_probability": 1.5, "error": "", "retryable": "no"}
    problems = config_problems(FlakyAgent(), bad, catalog())
    assert sorted(field for field, _ in problems) == [
        "error",
        "fail_attempts",
        "fail_probability",
        "retryable",
    ]
    good = {"fail_attempts": 2.0, "fail_probability": 0.5, "error": "E", "delay_ms": 1}
    assert config_problems(FlakyAgent(), good, catalog()) == []


# transform


async def test_transform_evaluates_a_cel_expression() -> None:
    ctx = Context(input={"items": [1, 2, 3]}, config={"output": "input.items.map(x, x * 2)"})
    assert await TransformAgent().run(ctx) == [2, 4, 6]


async def test_transform_evaluates_a_mapping_of_expressions() -> None:
    config = {"output": {"total": "input.a + input.b", "big": "input.a > 10"}}
    # 2.0 as a google.protobuf.Struct would deliver it: CEL still adds it to an int.
    assert await TransformAgent().run(Context(input={"a": 2.0, "b": 3}, config=config)) == {
        "total": 5,
        "big": False,
    }


def test_transform_reports_bad_expressions_by_field() -> None:
    problems = config_problems(
        TransformAgent(), {"output": {"ok": "input", "bad": "input +"}}, catalog()
    )
    assert [field for field, _ in problems] == ["output.bad"]
    assert [f for f, _ in config_problems(TransformAgent(), {"output": "nope"}, catalog())] == [
        "output"
    ]
    assert [f for f, _ in config_problems(TransformAgent(), {}, catalog())] == ["output"]


async def test_transform_fails_for_good_when_evaluation_fails() -> None:
    with pytest.raises(AgentError) as error:
        await TransformAgent().run(Context(input={}, config={"output": "input.missing"}))
    assert error.value.code == "podium.InvalidInput"
    assert not error.value.retryable


# simulated provider


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
    provider = SimulatedProvider(latency_ms=60_000)
    started = time.monotonic()
    await provider.complete(request("fast", latency_ms=30))
    assert 0.025 <= time.monotonic() - started < 5
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


# llm


def gateway() -> DirectGateway:
    return DirectGateway({"simulated": SimulatedProvider(latency_ms=0)})


async def test_llm_renders_its_prompt_and_returns_text_usage_and_cost() -> None:
    llm = gateway()
    config = {
        "model": "sim-large",
        "system": "You are terse.",
        "prompt": "Review {{ input.title }} with tags {{ input.tags }} ({{ input.n + 1 }})",
        "max_tokens": 100,
        "temperature": 0.2,
        "options": {"latency_ms": 0},
    }
    ctx = Context(input={"title": "the plan", "tags": ["a", "b"], "n": 1.0}, config=config, llm=llm)
    output = await LlmAgent().run(ctx)

    sent = llm.requests[0]
    assert [m.role for m in sent.messages] == ["system", "user"]
    assert sent.messages[1].content == 'Review the plan with tags ["a", "b"] (2)'
    assert (sent.model, sent.max_tokens, sent.temperature) == ("sim-large", 100, 0.2)
    assert sent.options == {"latency_ms": 0}
    expected = SimulatedProvider().price("sim-large")
    assert expected is not None
    usage = Usage(output["usage"]["input_tokens"], output["usage"]["output_tokens"])
    assert output["cost"] == str(expected.cost(usage))
    assert Decimal(output["cost"]) > 0
    assert output["provider"] == "simulated" and output["model"] == "sim-large"
    assert output["text"].startswith("[sim-large] ")


async def test_llm_without_a_prompt_setting_sends_the_input_prompt() -> None:
    llm = gateway()
    output = await LlmAgent().run(Context(input={"prompt": "Hello there"}, llm=llm))
    assert llm.requests[0].messages == [Message("user", "Hello there")]
    assert llm.requests[0].model == "sim-small"
    assert output["model"] == "sim-small"
    with pytest.raises(AgentError) as error:
        await LlmAgent().run(Context(input={"question": "?"}, llm=llm))
    assert not error.value.retryable


async def test_llm_propagates_provider_errors() -> None:
    ctx = Context(input={"prompt": "x"}, config={"model": "nope"}, llm=gateway())
    with pytest.raises(ProviderError):
        await LlmAgent().run(ctx)


def test_llm_checks_provider_and_templates() -> None:
    problems = dict(
        config_problems(
            LlmAgent(),
            {"provider": "openai", "prompt": "Hi {{ input. }}", "max_tokens": 0},
            catalog(),
        )
    )
    assert set(problems) == {"provider", "prompt", "max_tokens"}
    assert "unknown provider 'openai'; known: simulated" in problems["provider"]
    assert [f for f, _ in config_problems(LlmAgent(), {"system": "{{ oops }}"}, catalog())] == [
        "system"
    ]
    assert [f for f, _ in config_problems(LlmAgent(), {"prompt": "{{ x"}, catalog())] == ["prompt"]
    assert config_problems(LlmAgent(), {"prompt": "Hi {{ input.name }}"}, catalog()) == []


# the plugin itself


def test_builtin_objects_satisfy_the_contract() -> None:
    for agent in (EchoAgent(), FlakyAgent(), LlmAgent(), TransformAgent()):
        assert isinstance(agent, Agent)
        assert agent.version == "1" and agent.description
    assert isinstance(SimulatedProvider(), Provider)


async def test_json_query_tool_evaluates_over_data() -> None:
    result = await JSON_QUERY_TOOL.call(
        {"expression": "data.filter(x, x > 1).size()", "data": [1, 2, 3]}
    )
    assert result == 2


async def test_simulated_usage_counts_one_call() -> None:
    completion = await SimulatedProvider(latency_ms=0).complete(request("hi"))
    assert completion.usage.calls == 1
    assert completion.model == "sim-small"
