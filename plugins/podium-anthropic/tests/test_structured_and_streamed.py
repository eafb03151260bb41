"""Structured output and token streaming with the real anthropic SDK against
the local fake: an `llm` step's response_format goes out as Anthropic's
structured output (output_config.format json_schema) and the parsed object is
the step's output; streamed text deltas reach `on_delta` in order."""

from __future__ import annotations

import json

from podium_anthropic import AnthropicProvider
from podium_anthropic.testing import (
    FakeAnthropic,
    Reply,
    message,
    message_events,
    text_block,
)

from podium.governance.policy import Policy
from podium.plugins.api import CompletionRequest, Message
from podium.testing import create_workflow, plain, run_to_end, serving, step_of
from podium.v1 import run_pb2

MODEL = "claude-haiku-4-5"
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["total", "currency"],
    "properties": {"total": {"type": "integer"}, "currency": {"type": "string"}},
}


async def test_structured_output_on_anthropic_is_the_steps_output(
    db_path: str, fake: FakeAnthropic
) -> None:
    answer = {"total": 4, "currency": "EUR"}
    fake.reply(
        Reply(body=message([text_block(json.dumps(answer))], input_tokens=30, output_tokens=9))
    )
    policy = Policy.model_validate(
        {"providers": {"anthropic": {"api_key": "test", "base_url": fake.base_url}}}
    )
    step = {
        "id": "extract",
        "agent": "llm",
        "config": {
            "provider": "anthropic",
            "model": MODEL,
            "prompt": "Extract the total",
            "response_format": {"type": "json_schema", "schema": SCHEMA},
        },
    }
    async with serving(db_path, policy=policy) as (server, stubs):
        await create_workflow(stubs, "extract", {"steps": [step]})
        run, _ = await run_to_end(stubs, "extract")
        provider = server.plugins.registry.provider("anthropic")
        assert isinstance(provider, AnthropicProvider)
        await provider.aclose()
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED, run.failure
    output = plain(step_of(run, "extract").output)
    assert output == answer and type(output["total"]) is int
    [request] = fake.requests
    assert request.body["output_config"]["format"] == {"type": "json_schema", "schema": SCHEMA}


async def test_streamed_text_deltas_reach_on_delta_in_order(fake: FakeAnthropic) -> None:
    text = "Bonjour, tout le monde!"
    fake.reply(Reply(events=message_events([text_block(text)], input_tokens=5, output_tokens=8)))
    provider = AnthropicProvider()
    provider.configure({"api_key": "test-key", "base_url": fake.base_url})
    pieces: list[str] = []
    try:
        completion = await provider.complete(
            CompletionRequest(MODEL, (Message("user", "hi"),), stream=True, on_delta=pieces.append)
        )
    finally:
        await provider.aclose()
    assert len(pieces) > 1
    assert "".join(pieces) == completion.text == text
