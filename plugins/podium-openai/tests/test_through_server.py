"""The openai provider through a real Podium server (in-process, a SQLite file
in tmp_path) on a ManualClock: a 429 pauses the provider's quota for its
retry-after and is retried without counting as a breaker failure; the call
that follows is priced exactly."""

from __future__ import annotations

import asyncio

import pytest
from podium_openai import OpenAIProvider
from podium_openai.testing import (
    FakeOpenAI,
    Reply,
    chat_completion,
    chat_usage,
    error,
)

from podium.core.clock import ManualClock
from podium.governance.policy import Policy
from podium.testing import (
    Stubs,
    collect_events,
    create_workflow,
    eventually,
    get_run,
    money_nanos,
    of_type,
    serving,
    start_run,
    step_of,
)
from podium.v1 import control_service_pb2, event_pb2, run_pb2

E = event_pb2
R = run_pb2
C = control_service_pb2


T0 = 1_700_000_000.0  # ManualClock's default start


async def events_so_far(stubs: Stubs, run: str) -> list[event_pb2.RunEvent]:
    last = (await get_run(stubs, run)).last_sequence
    return await collect_events(stubs, run, limit=last) if last else []


async def test_an_llm_step_on_openai_through_a_server(fake: FakeOpenAI, db_path: str) -> None:
    clock = ManualClock()
    policy = Policy.model_validate(
        {
            "providers": {"openai": {"api_key": "test", "base_url": fake.base_url}},
            "quotas": [
                {
                    "name": "openai-rpm",
                    "scope": "provider:openai",
                    "dimension": "requests",
                    "limit": 600,
                    "burst": 10,
                }
            ],
            # One failure would open these, were a 429 counted as one.
            "breakers": {"defaults": {"failure_threshold": 1}},
        }
    )
    fake.reply(
        Reply(status=429, body=error("slow down", "requests"), headers={"retry-after": "5"}),
        Reply(body=chat_completion("Hello from OpenAI", usage=chat_usage(1000, 200, cached=400))),
    )
    step = {
        "id": "ask",
        "agent": "llm",
        "config": {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "prompt": "Hello there",
            "max_tokens": 256,
        },
        "retry": [{"errorEquals": ["provider.rate_limited"], "interval": "1s", "maxAttempts": 3}],
    }
    async with serving(db_path, policy=policy, clock=clock) as (server, stubs):
        await create_workflow(stubs, "ask-openai", {"steps": [step]})
        run = await start_run(stubs, "ask-openai")

        async def retrying() -> bool:
            events = await events_so_far(stubs, run.name)
            return bool(of_type(events, E.RUN_EVENT_TYPE_STEP_RETRYING))

        await eventually(retrying, what="the 429 makes the step retry")
        # The 429 paused the provider's bucket for retry-after ...
        [quota] = (await stubs.control.ListQuotas(C.ListQuotasRequest())).quotas
        assert quota.HasField("paused_until")
        assert quota.paused_until.ToNanoseconds() / 1e9 == pytest.approx(T0 + 5, abs=1e-3)
        # ... and no breaker counted it as a failure.
        board = (await stubs.control.ListBreakers(C.ListBreakersRequest())).breakers
        assert {breaker.name for breaker in board} >= {"provider:openai"}
        assert all(b.failures == 0 and b.state == C.BREAKER_STATE_CLOSED for b in board)

        async def succeeded() -> bool:
            """A second of the ManualClock per poll, until the retry went through."""
            if (await get_run(stubs, run.name)).state == R.RUN_STATE_SUCCEEDED:
                return True
            clock.advance(1.0)
            await asyncio.sleep(0.05)
            return False

        await eventually(succeeded, what="the retry after the 429 succeeds")
        final = await get_run(stubs, run.name)
        events = await collect_events(stubs, run.name)
        board = (await stubs.control.ListBreakers(C.ListBreakersRequest())).breakers
        provider = server.plugins.registry.provider("openai")
        assert isinstance(provider, OpenAIProvider)
        await provider.aclose()

    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    assert len(step_of(final, "ask").attempts) == 2
    [call] = of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)
    assert (call.provider, call.model) == ("openai", "gpt-4o-mini")
    assert call.time.ToNanoseconds() / 1e9 >= T0 + 5 - 1e-3, "called before retry-after"
    assert (call.usage.input_tokens, call.usage.output_tokens) == (1000, 200)
    # 600 at $0.15/M + 400 cached at $0.075/M + 200 at $0.60/M = $0.00024
    assert money_nanos(call.cost) == 240_000
    assert all(b.failures == 0 and b.state == C.BREAKER_STATE_CLOSED for b in board)
    [first, second] = fake.bodies()
    assert first == second
    assert first["max_tokens"] == 256
    assert first["messages"] == [{"role": "user", "content": "Hello there"}]
