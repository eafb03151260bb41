"""A tool's arguments checked against the JSON Schema it declares, before it is called.

A model's tool call is untrusted input: a missing or mistyped argument should come back to the
model as a clear error it can correct on its next turn, not as whatever exception the tool's
code happens to raise (or, worse, a wrong result computed from a wrong argument).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError

from podium.plugins.api import AgentError, Tool

__all__ = ["INVALID_TOOL_ARGUMENTS", "check_arguments", "schema_problem"]

INVALID_TOOL_ARGUMENTS = "podium.InvalidToolArguments"
# Violations listed in one error: enough for a model to fix its call, short enough to read.
_SHOWN = 5
# Compiled validators by tool: tools live as long as the server, and there are few.
_validators: dict[int, tuple[Tool, Any]] = {}


def schema_problem(parameters: Mapping[str, Any]) -> str | None:
    """Why a tool's `parameters` is not a JSON Schema, or None when it is one."""
    try:
        jsonschema.validators.validator_for(parameters).check_schema(dict(parameters))
    except SchemaError as error:
        return error.message
    return None


def check_arguments(tool: Tool, arguments: Mapping[str, Any]) -> None:
    """Raises AgentError (`podium.InvalidToolArguments`, not retryable: the same call fails the
    same way) naming each violation by its JSON pointer; returns when the arguments fit."""
    violations = sorted(
        _validator(tool).iter_errors(dict(arguments)), key=lambda error: list(error.path)
    )
    if not violations:
        return
    listed = "; ".join(
        f"{_pointer(error.absolute_path)}: {error.message}" for error in violations[:_SHOWN]
    )
    more = f" (and {len(violations) - _SHOWN} more)" if len(violations) > _SHOWN else ""
    raise AgentError(
        f"arguments of tool {tool.name!r} do not match its parameters: {listed}{more}",
        code=INVALID_TOOL_ARGUMENTS,
        retryable=False,
    )


def _validator(tool: Tool) -> Any:
    cached = _validators.get(id(tool))
    if cached is not None and cached[0] is tool:
        return cached[1]
    schema = dict(tool.parameters)
    validator = jsonschema.validators.validator_for(schema)(schema)
    _validators[id(tool)] = (tool, validator)
    return validator


def _pointer(path: Any) -> str:
    return "/" + "/".join(str(part) for part in path) if path else "(the arguments)"
