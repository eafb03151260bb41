"""The JSON Schemas of the builtin agents' step config, as ListAgents
publishes them and CreateWorkflow checks them. Each agent's own
`check_config` adds what a schema cannot say (a known provider, a template
that compiles) and names those faults more precisely."""

from __future__ import annotations

from typing import Any

_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_NUMBER = {"type": "number"}
_TEXT = {"type": "string"}
_DELAY = {"type": "number", "minimum": 0, "description": "milliseconds"}
_TARGET = {
    "type": "object",
    "required": ["provider", "model"],
    "additionalProperties": False,
    "properties": {
        "provider": _TEXT,
        "model": _TEXT,
        "when_budget_above": {
            "description": "take the calls once this budget is used that far (run: max_cost)",
            "type": "object",
            "required": ["budget", "fraction"],
            "additionalProperties": False,
            "properties": {
                "budget": {"type": "string", "minLength": 1},
                "fraction": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
    },
}
RESPONSE_FORMAT: dict[str, Any] = {
    "description": "structured output: the parsed JSON object becomes the step's output",
    "type": "object",
    "required": ["type"],
    "additionalProperties": False,
    "properties": {
        "type": {"enum": ["json_schema", "json_object"]},
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
        "schema": {"type": "object"},
        "strict": {"type": "boolean"},
    },
}
_MODEL_SETTINGS: dict[str, Any] = {
    "provider": {"type": "string", "minLength": 1},
    "model": {"type": "string", "minLength": 1},
    "prompt": {"type": "string", "description": "template with {{ CEL }} over `input`"},
    "system": {"type": "string", "description": "template with {{ CEL }} over `input`"},
    "max_tokens": {"type": "integer", "minimum": 1},
    "temperature": {"type": "number", "minimum": 0},
    "options": {"type": "object", "description": "passed to the provider"},
    "fallbacks": {"type": "array", "items": _TARGET},
    "response_format": RESPONSE_FORMAT,
    "stream": {"type": "boolean", "description": "stream the answer (output deltas)"},
}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "$schema": _DRAFT,
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }


ECHO = _object({"delay_ms": _DELAY})
TRANSFORM = _object(
    {
        "output": {
            "description": "a CEL expression over `input`, or output keys to CEL expressions",
            "type": ["string", "object"],
            "additionalProperties": {"type": "string"},
        }
    }
)
FLAKY = _object(
    {
        "fail_attempts": {"type": "integer", "minimum": 0},
        "fail_probability": {"type": "number", "minimum": 0, "maximum": 1},
        "error": _TEXT,
        "message": _TEXT,
        "retryable": {"type": "boolean"},
        "delay_ms": _DELAY,
        "seed": {"type": "integer"},
    }
)
LLM = _object(_MODEL_SETTINGS)
REACT = _object({**_MODEL_SETTINGS, "max_turns": {"type": "integer", "minimum": 1}})
