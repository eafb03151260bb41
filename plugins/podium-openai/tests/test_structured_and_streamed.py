"""Structured output and token streaming with the real openai SDK against the
local fake: an `llm` step's response_format goes out as OpenAI's native
json_schema response format and the parsed object is the step's output;
streamed text reaches `on_delta` piece by piece, in order (Chat Completions
and the Responses API)."""

from __future__ import annotations

import json

from podium_openai import OpenAIProvider
from podium_openai.testing import (
    FakeOpenAI,
    Reply,
    chat_chunks,
    chat_completion,
    chat_usage,
    response,
    response_events,
    response_usage,
)

from podium.governance.policy import Policy
from podium.plugins.api import CompletionRequest, Message
from podium.testing import create_workflow, plain, run_to_end, serving, step_of
from podium.v1 import run_pb2

PLAN_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["items"],
    "properties": {"items": {"type": "array", "items": {"type": "string"}}},
}


async def test_a_planner_on_openai_fans_out_over_its_json_plan(
    fake: FakeOpenAI, db_path: str
) -> None:
    plan = {"items": ["intro", "numbers", "outlook"]}
    fake.reply(Reply(body=chat_completion(json.dumps(plan), usage=chat_usage(50, 20))))
    policy = Policy.model_validate(
        {"providers": {"openai": {"api_key": "test", "base_url": fake.base_url}}}
    )
    spec = {
        "steps": [
            {
                "id": "plan",
                "agent": "llm",
                "config": {
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "prompt": "Plan a report",
                    "response_format": {
                        "type": "json_schema",
                        "name": "plan",
                        "strict": True,
                        "schema": PLAN_SCHEMA,
                    },
                },
            },
            {
                "id": "write",
                "agent": "echo",
                "dependsOn": ["plan"],
                "forEach": {"items": "steps.plan.output.items"},
                "input": {"section": "item"},
            },
        ]
    }
    async with serving(db_path, policy=policy) as (server, stubs):
        await create_workflow(stubs, "plan", spec)
        run, _ = await run_to_end(stubs, "plan")
        provider = server.plugins.registry.provider("openai")
        assert isinstance(provider, OpenAIProvider)
        await provider.aclose()
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED, run.failure
    assert plain(step_of(run, "plan").output) == plan
    assert [o["section"] for o in plain(step_of(run, "write").output)] == plan["items"]
    [body] = fake.bodies()
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "plan", "strict": True, "schema": PLAN_SCHEMA},
    }


async def test_chat_and_responses_streams_hand_each_piece_to_on_delta(fake: FakeOpenAI) -> None:
    provider = OpenAIProvider(
        {"api_key": "test", "base_url": fake.base_url, "models": {"o4-mini": {"api": "responses"}}}
    )
    fake.reply(
        Reply(events=chat_chunks(("Hel", "lo", " there"), usage=chat_usage(10, 3))),
        Reply(
            events=response_events(
                response("Hello!", model="o4-mini", usage=response_usage(10, 2)),
                pieces=("Hel", "lo!"),
            )
        ),
    )
    pieces: list[str] = []
    messages = (Message("user", "hi"),)
    try:
        chat = await provider.complete(
            CompletionRequest("gpt-4o-mini", messages, stream=True, on_delta=pieces.append)
        )
        assert pieces == ["Hel", "lo", " there"] and chat.text == "Hello there"
        pieces.clear()
        answer = await provider.complete(
            CompletionRequest("o4-mini", messages, stream=True, on_delta=pieces.append)
        )
        assert pieces == ["Hel", "lo!"] and answer.text == "Hello!"
    finally:
        await provider.aclose()
