"""A provider key comes from the server's environment only: it reaches the
provider, and nothing Podium stores, logs or answers ever holds it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from podium_openai import OpenAIProvider
from podium_openai.testing import FakeOpenAI

from podium.governance.policy import Policy
from podium.testing import collect_events, create_workflow, get_run, serving, start_run

SENTINEL = "sk-podium-test-0123456789-never-stored"


async def test_the_provider_key_is_never_stored_logged_or_answered(
    fake: FakeOpenAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    policy = Policy.model_validate({"providers": {"openai": {"base_url": fake.base_url}}})
    step = {
        "id": "ask",
        "agent": "llm",
        "config": {"provider": "openai", "model": "gpt-4o-mini", "prompt": "Hi"},
    }
    db = tmp_path / "podium.db"
    async with serving(str(db), policy=policy) as (server, stubs):
        await create_workflow(stubs, "ask", {"steps": [step]})
        run = await start_run(stubs, "ask")
        events = await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
        provider = server.plugins.registry.provider("openai")
        assert isinstance(provider, OpenAIProvider)
        await provider.aclose()
    assert fake.requests[0].headers["authorization"] == f"Bearer {SENTINEL}"
    answered = str(final) + "".join(str(e) for e in events)
    assert "Hello" in answered  # the call went through
    assert SENTINEL not in answered
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("podium.db"))
    assert stored and SENTINEL.encode() not in stored
    assert SENTINEL not in caplog.text
