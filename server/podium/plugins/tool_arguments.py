"""A tool's arguments checked against the JSON Schema it declares, before it is called.

A model's tool call is untrusted input: a missing or mistyped argument should come back to the
model as a clear error it can correct on its next turn, not as whatever exception the tool's
code happens to raise (or, worse, a wrong result computed from a wrong argument).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podium.core.schemas import json_pointer, violations
from podium.plugins.api import AgentError, Tool

__all__ = ["INVALID_TOOL_ARGUMENTS", "check_arguments"]

INVALID_TOOL_ARGUMENTS = "podium.InvalidToolArguments"
# Violations listed in one error: enough for a model to fix its call, short enough to read.
_SHOWN = 5


def check_arguments(tool: Tool, arguments: Mapping[str, Any]) -> None:
    """Raises AgentError (`podium.InvalidToolArguments`, not retryable: the same call fails the
    same way) naming each violation by its JSON pointer; returns when the arguments fit. The
    tool's `parameters` were checked to be a JSON Schema when its plugin loaded."""
    found = violations(tool.parameters, dict(arguments))
    if not found:
        return
    listed = "; ".join(
        f"{json_pointer(path) or '(the arguments)'}: {reason}" for path, reason in found[:_SHOWN]
    )
    more = f" (and {len(found) - _SHOWN} more)" if len(found) > _SHOWN else ""
    raise AgentError(
        f"arguments of tool {tool.name!r} do not match its parameters: {listed}{more}",
        code=INVALID_TOOL_ARGUMENTS,
        retryable=False,
    )
