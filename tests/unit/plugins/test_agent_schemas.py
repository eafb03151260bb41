"""An agent's published JSON Schemas are checked when it is registered: a
broken one is the plugin's failure, reported at load time, never a later
CreateWorkflow's crash."""

from __future__ import annotations

from typing import Any

import pytest

from podium.plugins.registry import RegistrationError, Registry


class Declaring:
    description = "declares schemas"
    version = "1"

    def __init__(self, name: str, **schemas: Any) -> None:
        self.name = name
        for kind, schema in schemas.items():
            setattr(self, kind, schema)

    async def run(self, ctx: Any) -> Any:
        return {}


@pytest.mark.parametrize(
    ("schemas", "words"),
    [
        ({"config_schema": {"type": 12}}, "config_schema is no JSON Schema"),
        ({"input_schema": ["object"]}, "input_schema must be a mapping"),
        ({"output_schema": {"minimum": float("nan")}}, "output_schema is not JSON"),
    ],
)
def test_a_broken_schema_refuses_the_agent(schemas: dict[str, Any], words: str) -> None:
    registry = Registry()
    with pytest.raises(RegistrationError, match=words):
        registry.add_agent(Declaring("broken", **schemas), plugin="p")
    assert registry.agent("broken") is None


def test_valid_schemas_register() -> None:
    registry = Registry()
    agent = Declaring("fine", config_schema={"type": "object"}, output_schema={"type": "array"})
    registry.add_agent(agent, plugin="p")
    assert registry.agent("fine") is agent
