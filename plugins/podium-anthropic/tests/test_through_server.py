"""The anthropic provider through a real Podium server (in-process, a SQLite
file in tmp_path): a governed llm step whose calls are priced exactly and
recorded."""

from __future__ import annotations

from podium_anthropic import AnthropicProvider
from podium_anthropic.testing import (
    FakeAnthropic,
    Reply,
    error,
    message,
    text_block,
)

from podium.governance.policy import Policy
from podium.testing import (
    create_workflow,
    money_nanos,
    of_type,
    plain,
    run_to_end,
    serving,
    step_of,
)
from podium.v1 import control_service_pb2, event_pb2, run_pb2

E = event_pb2
R = run_pb2


RATE_LIMITS = {
    "anthropic-ratelimit-requests-remaining": "49",
    "anthropic-ratelimit-tokens-remaining": "39000",
}
MODEL = "claude-haiku-4-5"


# USD per million: input, output, cache read, cache write.


async def test_an_llm_step_on_anthropic_is_governed(db_path: str, fake: FakeAnthropic) -> None:
    overloaded = Reply(status=529, body=error("overloaded_error", "Overloaded"))
    answer = message(
        [text_block("Bonjour!")],
        input_tokens=20,
        output_tokens=10,
        cache_read=100,
        cache_write=40,
    )
    fake.reply(overloaded, Reply(body=answer, headers=RATE_LIMITS))
    rules = Policy.model_validate(
        {"providers": {"anthropic": {"api_key": "test", "base_url": fake.base_url}}}
    )
    step = {
        "id": "greet",
        "agent": "llm",
        "config": {"provider": "anthropic", "model": MODEL, "prompt": "Say hi", "max_tokens": 32},
        "retry": [{"errorEquals": ["provider.overloaded"], "interval": "0.01s", "maxAttempts": 3}],
    }
    async with serving(db_path, policy=rules) as (server, stubs):
        await create_workflow(stubs, "greet", {"steps": [step]})
        run, events = await run_to_end(stubs, "greet")
        board = await stubs.control.ListBreakers(control_service_pb2.ListBreakersRequest())
        provider = server.plugins.registry.provider("anthropic")
        assert isinstance(provider, AnthropicProvider)
        await provider.aclose()  # Podium gives providers no shutdown hook

    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    greet = step_of(run, "greet")
    assert len(greet.attempts) == 2
    assert greet.attempts[0].failure.type == "provider.overloaded"
    assert plain(greet.output)["text"] == "Bonjour!"

    [call] = of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)
    assert (call.provider, call.model) == ("anthropic", MODEL)
    assert (call.usage.input_tokens, call.usage.cached_input_tokens) == (120, 100)
    assert (call.usage.cache_write_tokens, call.usage.output_tokens) == (40, 10)
    # 20 x $1 + 100 x $0.10 + 40 x $1.25 + 10 x $5 = 130 micro-dollars
    assert money_nanos(call.cost) == 130_000
    assert money_nanos(run.cost) == 130_000

    breakers = {breaker.name: breaker for breaker in board.breakers}
    anthropic_breaker = breakers["provider:anthropic"]
    assert anthropic_breaker.failures == 1
    assert "overloaded" in anthropic_breaker.last_failure
    assert len(fake.requests) == 2
