"""The builtin llm agent: renders its prompt from the step input, asks the
provider through the step's gateway, returns text, usage and cost; its
config checked against the catalog."""

from __future__ import annotations

from decimal import Decimal

import pytest

from podium.plugins import Registry
from podium.plugins.api import (
    AgentError,
    Message,
    ProviderError,
    Usage,
    config_problems,
)
from podium.plugins.builtin import (
    LlmAgent,
    SimulatedProvider,
)
from podium.testing import DirectLlmGateway, FakeStepContext, ScriptedProvider, text_reply


def gateway() -> DirectLlmGateway:
    return DirectLlmGateway([SimulatedProvider(latency_ms=0)])


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
    ctx = FakeStepContext(
        input={"title": "the plan", "tags": ["a", "b"], "n": 1.0}, config=config, llm=llm
    )
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
    output = await LlmAgent().run(FakeStepContext(input={"prompt": "Hello there"}, llm=llm))
    assert llm.requests[0].messages == [Message("user", "Hello there")]
    assert llm.requests[0].model == "sim-small"
    assert output["model"] == "sim-small"
    with pytest.raises(AgentError) as error:
        await LlmAgent().run(FakeStepContext(input={"question": "?"}, llm=llm))
    assert not error.value.retryable


async def test_llm_propagates_provider_errors() -> None:
    ctx = FakeStepContext(input={"prompt": "x"}, config={"model": "nope"}, llm=gateway())
    with pytest.raises(ProviderError):
        await LlmAgent().run(ctx)


def test_llm_checks_provider_and_templates(catalog: Registry) -> None:
    problems = dict(
        config_problems(
            LlmAgent(),
            {"provider": "openai", "prompt": "Hi {{ input. }}", "max_tokens": 0},
            catalog,
        )
    )
    assert set(problems) == {"provider", "prompt", "max_tokens"}
    assert "unknown provider 'openai'; known: simulated" in problems["provider"]
    assert [f for f, _ in config_problems(LlmAgent(), {"system": "{{ oops }}"}, catalog)] == [
        "system"
    ]
    assert [f for f, _ in config_problems(LlmAgent(), {"prompt": "{{ x"}, catalog)] == ["prompt"]
    assert config_problems(LlmAgent(), {"prompt": "Hi {{ input.name }}"}, catalog) == []


async def test_llm_streams_when_asked_and_falls_back_on_an_outage() -> None:
    down = ScriptedProvider(ProviderError("no capacity", kind="overloaded"), name="primary")
    backup = ScriptedProvider(text_reply("Fine.", input_tokens=3, output_tokens=1), name="backup")
    config = {
        "provider": "primary",
        "model": "large",
        "stream": True,
        "fallbacks": [{"provider": "backup", "model": "small"}],
    }
    ctx = FakeStepContext({"prompt": "How are you?"}, config=config, providers=[down, backup])
    output = await LlmAgent().run(ctx)
    assert (output["text"], output["provider"], output["model"]) == ("Fine.", "backup", "small")
    assert output["usage"] == {"input_tokens": 3, "output_tokens": 1}
    assert output["cost"] == "0"  # the backup declares no price
    assert [(r.model, r.stream) for r in ctx.llm_calls.requests] == [
        ("large", True),
        ("small", True),
    ]
