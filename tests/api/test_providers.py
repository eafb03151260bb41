"""The real provider plugins end to end through gRPC: a real Podium server on
127.0.0.1 over a SQLite file, the real openai and anthropic SDKs talking real
HTTP to the fake APIs each plugin ships (podium_openai.testing,
podium_anthropic.testing).

Checked: a `react` agent with two builtin tools (calculator, json_query) on
each provider (the tool events, the exact cost of every LLM_CALL, what the
SDK sent back to the model, the run's output), and faults through the
governed gateway (a 500 retried and counted by the breaker, a 400 neither
retried nor counted, a stream dropped midway charged at its worst case)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest
from podium_anthropic import AnthropicProvider
from podium_anthropic import testing as anthropic_fake
from podium_openai import OpenAIProvider
from podium_openai import testing as openai_fake

from podium.governance.policy import Policy
from podium.plugins.builtin.calculator import PARAMETERS as CALCULATOR_PARAMETERS
from podium.plugins.builtin.json_query import PARAMETERS as JSON_QUERY_PARAMETERS
from podium.server.app import PodiumServer
from podium.testing import (
    Stubs,
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

C = control_service_pb2
NANOS = Decimal(1_000_000_000)
MILLION = Decimal(1_000_000)

OPENAI_MODEL = "gpt-4o-mini"  # $0.15 in, $0.60 out per million tokens
ANTHROPIC_MODEL = "claude-haiku-4-5"  # $1 in, $1.25 cache write, $5 out per million tokens

PROMPT = "What is 17 times 3, and which items cost more than 10?"
DATA = {"items": [{"name": "apple", "price": 12}, {"name": "pear", "price": 4}]}
QUERY = "data.items.filter(i, i.price > 10).map(i, i.name)"
CALC_ARGUMENTS = {"expression": "17 * 3"}
QUERY_ARGUMENTS = {"data": DATA, "expression": QUERY}
ANSWER = "17 * 3 = 51; only the apple costs more than 10."
# (input, output) tokens of the three turns.
TURN_USAGE = ((100, 20), (150, 30), (200, 10))


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """The SDKs read these themselves: a developer's own must not leak in."""
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_ADMIN_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "OPENAI_CUSTOM_HEADERS",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_PROFILE",
        "ANTHROPIC_CONFIG_DIR",
        "ANTHROPIC_CUSTOM_HEADERS",
        "ANTHROPIC_FEDERATION_RULE_ID",
        "ANTHROPIC_ORGANIZATION_ID",
        "ANTHROPIC_IDENTITY_TOKEN",
        "ANTHROPIC_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture
def openai() -> Iterator[openai_fake.FakeOpenAI]:
    with openai_fake.FakeOpenAI() as server:
        yield server


@pytest.fixture
def anthropic() -> Iterator[anthropic_fake.FakeAnthropic]:
    with anthropic_fake.FakeAnthropic() as server:
        yield server


@asynccontextmanager
async def governed(
    db_path: str, provider: str, base_url: str
) -> AsyncIterator[tuple[PodiumServer, Stubs]]:
    """A server whose policy points `provider` at a fake; the provider's SDK
    client is closed before the server stops (Podium has no hook for it)."""
    policy = Policy.model_validate(
        {"providers": {provider: {"api_key": "test", "base_url": base_url}}}
    )
    async with serving(db_path, policy=policy) as (server, stubs):
        try:
            yield server, stubs
        finally:
            plugin = server.plugins.registry.provider(provider)
            assert isinstance(plugin, OpenAIProvider | AnthropicProvider)
            await plugin.aclose()


def react_step(provider: str, model: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "agent",
        "agent": "react",
        "tools": ["calculator", "json_query"],
        "config": {
            "provider": provider,
            "model": model,
            "prompt": PROMPT,
            "max_tokens": 200,
            "max_turns": 5,
        },
        **extra,
    }


def llm_step(provider: str, model: str, **config: Any) -> dict[str, Any]:
    return {
        "id": "ask",
        "agent": "llm",
        "config": {
            "provider": provider,
            "model": model,
            "prompt": "Say hi",
            "max_tokens": 32,
            **config,
        },
    }


def cost_nanos(input_tokens: int, output_tokens: int, input_rate: str, output_rate: str) -> int:
    """Exact nano-dollars of a call without cache tokens, rates per million."""
    usd = (input_tokens * Decimal(input_rate) + output_tokens * Decimal(output_rate)) / MILLION
    nanos = usd * NANOS
    assert nanos == nanos.to_integral_value(), "pick usages with a whole nano-dollar cost"
    return int(nanos)


async def server_spend(stubs: Stubs) -> C.GetSpendResponse:
    return await stubs.control.GetSpend(C.GetSpendRequest(scope_kind=C.SCOPE_KIND_SERVER))


def tool_story(events: Sequence[event_pb2.RunEvent]) -> list[tuple[str, str, Any]]:
    """The tool events in order: (TOOL_CALLED, tool, arguments) and
    (TOOL_RESULT, tool, output)."""
    story: list[tuple[str, str, Any]] = []
    for event in events:
        if event.type == E.RUN_EVENT_TYPE_TOOL_CALLED:
            story.append(("called", event.tool, json.loads(event.message)))
        elif event.type == E.RUN_EVENT_TYPE_TOOL_RESULT:
            assert not event.HasField("failure"), event.failure
            story.append(("result", event.tool, plain(event.output)))
    return story


EXPECTED_TOOL_STORY = [
    ("called", "calculator", CALC_ARGUMENTS),
    ("result", "calculator", 51),
    ("called", "json_query", QUERY_ARGUMENTS),
    ("result", "json_query", ["apple"]),
]
EXPECTED_TRACE = [
    {"turn": 1, "tool": "calculator", "arguments": CALC_ARGUMENTS, "result": 51},
    {"turn": 2, "tool": "json_query", "arguments": QUERY_ARGUMENTS, "result": ["apple"]},
]


def check_react_run(
    run: run_pb2.Run,
    events: Sequence[event_pb2.RunEvent],
    provider: str,
    model: str,
    expected_costs: Sequence[int],
    spend: C.GetSpendResponse,
) -> None:
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    assert tool_story(events) == EXPECTED_TOOL_STORY

    calls = of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)
    assert [(c.provider, c.model) for c in calls] == [(provider, model)] * 3
    assert [(c.step_id, c.attempt) for c in calls] == [("agent", 1)] * 3
    assert [money_nanos(c.cost) for c in calls] == list(expected_costs)
    assert [(c.usage.input_tokens, c.usage.output_tokens) for c in calls] == list(TURN_USAGE)
    assert all(c.price_version and c.price_version == calls[0].price_version for c in calls)
    # Each tool runs between the model turn that asked for it and the next one.
    order = [
        "llm" if e.type == E.RUN_EVENT_TYPE_LLM_CALL else e.tool
        for e in events
        if e.type in (E.RUN_EVENT_TYPE_LLM_CALL, E.RUN_EVENT_TYPE_TOOL_RESULT)
    ]
    assert order == ["llm", "calculator", "llm", "json_query", "llm"]

    output = plain(step_of(run, "agent").output)
    assert output["answer"] == ANSWER
    assert output["turns"] == 3
    assert output["trace"] == EXPECTED_TRACE
    assert (output["provider"], output["model"]) == (provider, model)
    assert output["usage"] == {
        "input_tokens": sum(i for i, _ in TURN_USAGE),
        "output_tokens": sum(o for _, o in TURN_USAGE),
    }
    assert Decimal(output["cost"]) * NANOS == sum(expected_costs)
    assert plain(run.output)["agent"]["answer"] == ANSWER
    assert money_nanos(run.cost) == sum(expected_costs)
    assert money_nanos(spend.total) == sum(expected_costs)
    [entry] = spend.entries
    assert entry.calls == 3


# -- a react agent with two tools ------------------------------------------------------------


async def test_react_with_two_tools_on_openai(db_path: str, openai: openai_fake.FakeOpenAI) -> None:
    usages = [openai_fake.chat_usage(i, o) for i, o in TURN_USAGE]
    calc = openai_fake.tool_call("call_calc", "calculator", CALC_ARGUMENTS)
    query = openai_fake.tool_call("call_query", "json_query", QUERY_ARGUMENTS)
    openai.reply(
        openai_fake.Reply(
            body=openai_fake.chat_completion(None, tool_calls=[calc], usage=usages[0])
        ),
        openai_fake.Reply(
            body=openai_fake.chat_completion(None, tool_calls=[query], usage=usages[1])
        ),
        openai_fake.Reply(body=openai_fake.chat_completion(ANSWER, usage=usages[2])),
    )
    async with governed(db_path, "openai", openai.base_url) as (_, stubs):
        await create_workflow(
            stubs, "react-openai", {"steps": [react_step("openai", OPENAI_MODEL)]}
        )
        run, events = await run_to_end(stubs, "react-openai")
        spend = await server_spend(stubs)

    expected = [cost_nanos(i, o, "0.15", "0.60") for i, o in TURN_USAGE]
    assert expected == [27_000, 40_500, 36_000]
    check_react_run(run, events, "openai", OPENAI_MODEL, expected, spend)

    bodies = openai.bodies()
    assert len(bodies) == 3
    assert all(request.path == "/v1/chat/completions" for request in openai.requests)
    for body in bodies:
        assert body["model"] == OPENAI_MODEL
        assert body["max_tokens"] == 200
        assert body["tools"] == [
            {
                "type": "function",
                "function": {
                    "name": "calculator",
                    "description": body["tools"][0]["function"]["description"],
                    "parameters": json.loads(json.dumps(CALCULATOR_PARAMETERS)),
                },
            },
            {
                "type": "function",
                "function": {
                    "name": "json_query",
                    "description": body["tools"][1]["function"]["description"],
                    "parameters": json.loads(json.dumps(JSON_QUERY_PARAMETERS)),
                },
            },
        ]
    user = {"role": "user", "content": PROMPT}
    calc_turn = {"role": "assistant", "content": None, "tool_calls": [calc]}
    calc_result = {"role": "tool", "tool_call_id": "call_calc", "content": "51"}
    query_turn = {"role": "assistant", "content": None, "tool_calls": [query]}
    query_result = {"role": "tool", "tool_call_id": "call_query", "content": '["apple"]'}
    assert bodies[0]["messages"] == [user]
    assert bodies[1]["messages"] == [user, calc_turn, calc_result]
    assert bodies[2]["messages"] == [user, calc_turn, calc_result, query_turn, query_result]


async def test_react_with_two_tools_on_anthropic(
    db_path: str, anthropic: anthropic_fake.FakeAnthropic
) -> None:
    calc = anthropic_fake.tool_use_block("toolu_calc", "calculator", CALC_ARGUMENTS)
    query = anthropic_fake.tool_use_block("toolu_query", "json_query", QUERY_ARGUMENTS)
    (i1, o1), (i2, o2), (i3, o3) = TURN_USAGE
    anthropic.reply(
        anthropic_fake.Reply(
            body=anthropic_fake.message(
                [anthropic_fake.text_block("Let me compute."), calc],
                input_tokens=i1,
                output_tokens=o1,
                stop_reason="tool_use",
            )
        ),
        anthropic_fake.Reply(
            body=anthropic_fake.message(
                [query], input_tokens=i2, output_tokens=o2, stop_reason="tool_use"
            )
        ),
        anthropic_fake.Reply(
            body=anthropic_fake.message(
                [anthropic_fake.text_block(ANSWER)], input_tokens=i3, output_tokens=o3
            )
        ),
    )
    async with governed(db_path, "anthropic", anthropic.base_url) as (_, stubs):
        step = react_step("anthropic", ANTHROPIC_MODEL)
        await create_workflow(stubs, "react-anthropic", {"steps": [step]})
        run, events = await run_to_end(stubs, "react-anthropic")
        spend = await server_spend(stubs)

    expected = [cost_nanos(i, o, "1", "5") for i, o in TURN_USAGE]
    assert expected == [200_000, 300_000, 250_000]
    check_react_run(run, events, "anthropic", ANTHROPIC_MODEL, expected, spend)

    requests = anthropic.requests
    assert [r.path for r in requests] == ["/v1/messages"] * 3
    bodies = [r.body for r in requests]
    for body in bodies:
        assert body["model"] == ANTHROPIC_MODEL
        assert body["max_tokens"] == 200
        assert [tool["name"] for tool in body["tools"]] == ["calculator", "json_query"]
        assert [tool["input_schema"] for tool in body["tools"]] == [
            json.loads(json.dumps(CALCULATOR_PARAMETERS)),
            json.loads(json.dumps(JSON_QUERY_PARAMETERS)),
        ]
    user = {"role": "user", "content": [{"type": "text", "text": PROMPT}]}
    calc_turn = {
        "role": "assistant",
        "content": [{"type": "text", "text": "Let me compute."}, calc],
    }
    calc_result = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_calc", "content": "51"}],
    }
    query_turn = {"role": "assistant", "content": [query]}
    query_result = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_query", "content": '["apple"]'}],
    }
    assert bodies[0]["messages"] == [user]
    assert bodies[1]["messages"] == [user, calc_turn, calc_result]
    assert bodies[2]["messages"] == [user, calc_turn, calc_result, query_turn, query_result]


# -- faults through the gateway --------------------------------------------------------------


async def breakers(stubs: Stubs) -> Mapping[str, C.Breaker]:
    board = await stubs.control.ListBreakers(C.ListBreakersRequest())
    return {breaker.name: breaker for breaker in board.breakers}


async def test_an_openai_500_is_retried_and_counted_by_the_breaker(
    db_path: str, openai: openai_fake.FakeOpenAI
) -> None:
    openai.reply(
        openai_fake.Reply(status=500, body=openai_fake.error("boom", "server_error")),
        openai_fake.Reply(
            body=openai_fake.chat_completion("Hi!", usage=openai_fake.chat_usage(10, 5))
        ),
    )
    retry = [{"errorEquals": ["provider.server_error"], "interval": "0.01s", "maxAttempts": 2}]
    step = {**llm_step("openai", OPENAI_MODEL), "retry": retry}
    async with governed(db_path, "openai", openai.base_url) as (_, stubs):
        await create_workflow(stubs, "ask-openai", {"steps": [step]})
        run, events = await run_to_end(stubs, "ask-openai")
        board = await breakers(stubs)

    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    ask = step_of(run, "ask")
    assert len(ask.attempts) == 2
    assert ask.attempts[0].failure.type == "provider.server_error"
    assert plain(ask.output)["text"] == "Hi!"
    assert len(of_type(events, E.RUN_EVENT_TYPE_STEP_RETRYING)) == 1
    [call] = of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)
    assert money_nanos(call.cost) == cost_nanos(10, 5, "0.15", "0.60")
    assert board["provider:openai"].failures == 1
    assert board["provider:openai"].state == C.BREAKER_STATE_CLOSED
    # Still closed (one failure): no cause for its state, the failure kept apart.
    assert "server_error" in board["provider:openai"].last_failure
    assert len(openai.requests) == 2


async def test_an_openai_400_is_not_retried_nor_counted(
    db_path: str, openai: openai_fake.FakeOpenAI
) -> None:
    openai.reply(
        openai_fake.Reply(
            status=400, body=openai_fake.error("bad request", "invalid_request_error")
        )
    )
    retry = [{"errorEquals": ["podium.All"], "interval": "0.01s", "maxAttempts": 3}]
    step = {**llm_step("openai", OPENAI_MODEL), "retry": retry}
    async with governed(db_path, "openai", openai.base_url) as (_, stubs):
        await create_workflow(stubs, "ask-openai", {"steps": [step]})
        run, events = await run_to_end(stubs, "ask-openai")
        board = await breakers(stubs)
        spend = await server_spend(stubs)

    assert run.state == R.RUN_STATE_FAILED
    ask = step_of(run, "ask")
    assert ask.state == R.STEP_STATE_FAILED
    assert len(ask.attempts) == 1
    assert ask.failure.type == "provider.bad_request"
    assert not ask.failure.retryable
    assert of_type(events, E.RUN_EVENT_TYPE_STEP_RETRYING) == []
    assert of_type(events, E.RUN_EVENT_TYPE_LLM_CALL) == []
    assert len(openai.requests) == 1
    assert all(breaker.failures == 0 for breaker in board.values())
    assert board["provider:openai"].state == C.BREAKER_STATE_CLOSED
    assert money_nanos(spend.total) == 0


async def test_an_anthropic_stream_dropped_midway_charges_the_worst_case(
    db_path: str, anthropic: anthropic_fake.FakeAnthropic
) -> None:
    events = anthropic_fake.message_events(
        [anthropic_fake.text_block("Hello there, my friend!")], input_tokens=8, output_tokens=6
    )
    # message_start, ping, content_block_start and one delta; then the connection drops.
    anthropic.reply(anthropic_fake.Reply(events=events, break_after=4))
    step = llm_step("anthropic", ANTHROPIC_MODEL, stream=True)
    async with governed(db_path, "anthropic", anthropic.base_url) as (_, stubs):
        await create_workflow(stubs, "ask-anthropic", {"steps": [step]})
        run, run_events = await run_to_end(stubs, "ask-anthropic")
        spend = await server_spend(stubs)
        board = await breakers(stubs)

    assert run.state == R.RUN_STATE_FAILED
    ask = step_of(run, "ask")
    assert ask.state == R.STEP_STATE_FAILED
    assert ask.failure.type == "provider.connection"
    [sent] = anthropic.requests
    assert sent.body["stream"] is True
    assert sent.body["max_tokens"] == 32

    [call] = of_type(run_events, E.RUN_EVENT_TYPE_LLM_CALL)
    assert (call.provider, call.model) == ("anthropic", ANTHROPIC_MODEL)
    assert "no usage reported" in call.message
    assert "charged the reservation" in call.message
    assert call.usage.calls == 1
    assert call.price_version
    # The worst case: the prompt's estimated tokens ("Say hi": 6 characters,
    # 2 tokens) at the dearer cache-write rate, and every max_tokens at $5/M.
    worst = cost_nanos(2, 32, "1.25", "5")
    assert worst == 162_500
    assert money_nanos(call.cost) == worst
    assert money_nanos(spend.total) == sum(
        money_nanos(e.cost) for e in of_type(run_events, E.RUN_EVENT_TYPE_LLM_CALL)
    )
    assert money_nanos(run.cost) == worst
    assert money_nanos(ask.cost) == money_nanos(ask.attempts[0].cost) == worst
    assert [entry.calls for entry in spend.entries] == [1]
    assert board["provider:anthropic"].failures == 1
