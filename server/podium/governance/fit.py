"""Calls that no quota could ever admit, found when a workflow is defined.

A step's LLM call reserves at least one request and its `max_tokens` of output
(input tokens only add to that), so a rate limit whose capacity (its burst) is
smaller than that can never admit the call: waiting would not help. Known at
CreateWorkflow for the limits configured then; a limit lowered later is caught
when the call is made (QuotaTimeout with the figures)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from podium.core.errors import FieldViolation
from podium.core.spec import WorkflowSpec
from podium.governance.quotas import RateLimit
from podium.governance.scopes import CallScopes
from podium.governance.windows import window_name
from podium.plugins.builtin.llm import DEFAULT_MAX_TOKENS, DEFAULT_MODEL, DEFAULT_PROVIDER

__all__ = ["LLM_AGENTS", "oversized_calls"]

# Agents whose steps make LLM calls configured by provider, model, max_tokens
# and fallbacks (the built-in llm agent and the ReAct loop).
LLM_AGENTS = frozenset({"llm", "react"})


def oversized_calls(
    spec: WorkflowSpec, workflow: str, tenant: str, limits: Iterable[RateLimit]
) -> list[FieldViolation]:
    """One violation per step and limit that the step's smallest call exceeds."""
    limits = tuple(limits)
    if not limits:
        return []
    violations: list[FieldViolation] = []
    for i, step in enumerate(spec.steps):
        if step.agent not in LLM_AGENTS:
            continue
        max_tokens = _int(step.config.get("max_tokens", DEFAULT_MAX_TOKENS))
        if max_tokens is None:
            continue  # a malformed max_tokens is the agent's config check's to report
        for field, provider, model in _targets(step.config, f"spec.steps[{i}].config"):
            call = CallScopes(provider, model, step.agent, workflow, tenant)
            for description in _exceeded(call, max_tokens, limits):
                violations.append(FieldViolation(field, description))
    return violations


def _targets(config: Mapping[str, Any], where: str) -> Iterator[tuple[str, str, str]]:
    """(field to blame, provider, model) of the step's first target and of each fallback."""
    provider, model = config.get("provider", DEFAULT_PROVIDER), config.get("model", DEFAULT_MODEL)
    if isinstance(provider, str) and isinstance(model, str) and provider and model:
        yield f"{where}.max_tokens", provider, model
    fallbacks = config.get("fallbacks")
    if not isinstance(fallbacks, list):
        return
    for target in fallbacks:
        if not isinstance(target, Mapping):
            continue
        provider, model = target.get("provider"), target.get("model")
        if isinstance(provider, str) and isinstance(model, str) and provider and model:
            yield f"{where}.max_tokens", provider, model


def _exceeded(call: CallScopes, max_tokens: int, limits: tuple[RateLimit, ...]) -> Iterator[str]:
    scopes = call.scopes()
    # The least the call can take of each dimension: input tokens are at least 0.
    least = {"requests": 1.0, "input_tokens": 0.0, "output_tokens": float(max_tokens)}
    least["tokens"] = least["output_tokens"]
    for limit in limits:
        if limit.scope not in scopes:
            continue
        amount = least[limit.dimension]
        if amount > limit.capacity:
            yield (
                f"a call to {call.model_key} asks at least {amount:g} {limit.dimension}"
                f" (max_tokens {max_tokens}), more than quota {limit.name!r} ({limit.scope})"
                f" can ever admit: capacity {limit.capacity:g} (burst; {limit.limit:g} per"
                f" {window_name(limit.window)})"
            )


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None
