"""Structured output of the `llm` and `react` agents: the step config's
`response_format` asks the provider for JSON (natively: OpenAI's
json_schema response format, Anthropic's structured output), and the answer
is parsed and checked here, so that the step's output is the object itself."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from podium.core.failures import INVALID_OUTPUT
from podium.core.schemas import first_violation, schema_problem
from podium.plugins.api import AgentError, ConfigProblem

DEFAULT_NAME = "output"


def response_format(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The provider request's response_format from the step config, with a
    schema's `name` defaulted (OpenAI requires one), or None for free text."""
    spec = config.get("response_format")
    if not isinstance(spec, Mapping):
        return None
    result = dict(spec)
    if result.get("type") == "json_schema":
        result.setdefault("name", DEFAULT_NAME)
    return result


def parse_answer(text: str, spec: Mapping[str, Any]) -> Any:
    """The model's JSON answer, parsed and checked against the schema; a
    model that answered something else fails the step with
    podium.InvalidOutput (never retried, as any output that breaks its
    contract: providers' native structured output makes it rare)."""
    try:
        value = json.loads(text)
    except ValueError as error:
        raise AgentError(
            f"the model's answer is not JSON ({error}): {text[:200]!r}",
            code=INVALID_OUTPUT,
            retryable=False,
        ) from None
    if spec.get("type") == "json_object" and not isinstance(value, dict):
        raise AgentError(
            "the model's answer is not a JSON object", code=INVALID_OUTPUT, retryable=False
        )
    schema = spec.get("schema")
    problem = first_violation(schema, value) if isinstance(schema, Mapping) else None
    if problem is not None:
        raise AgentError(
            f"the model's answer violates the response_format schema: {problem}",
            code=INVALID_OUTPUT,
            retryable=False,
        )
    return value


def response_format_problems(config: Mapping[str, Any]) -> Iterator[ConfigProblem]:
    if "response_format" not in config:
        return
    spec = config["response_format"]
    if not isinstance(spec, Mapping):
        yield ("response_format", "must be a mapping with `type` json_schema or json_object")
        return
    kind = spec.get("type")
    if kind not in ("json_schema", "json_object"):
        yield ("response_format.type", "must be json_schema or json_object")
    elif kind == "json_schema":
        schema = spec.get("schema")
        if not isinstance(schema, Mapping):
            yield ("response_format.schema", "a json_schema response format needs a `schema`")
        else:
            problem = schema_problem(schema)
            if problem is not None:
                yield ("response_format.schema", f"not a JSON Schema: {problem}")
