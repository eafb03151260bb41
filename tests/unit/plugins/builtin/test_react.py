"""The builtin react agent on a FakeStepContext: the reason-act loop with real
tools, tool failures fed back to the model, fallbacks and max_turns, without
a server (the same through gRPC, with events: tests/api/test_react.py)."""

from __future__ import annotations

from podium.plugins.api import (
    Agent,
)
from podium.plugins.builtin import ReactAgent


def test_the_agent_is_registered_and_satisfies_the_contract() -> None:
    agent = ReactAgent()
    assert isinstance(agent, Agent)
    assert agent.name == "react" and agent.version == "1" and agent.description
