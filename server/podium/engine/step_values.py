"""What a step's values must be: a condition's truth, a wait's instant, an
agent's output (JSON, within the size limit), a cache key; and StepFailed,
how any of them fails the step."""

from __future__ import annotations

import datetime
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from podium.core import limits
from podium.core.failures import INVALID_INPUT, INVALID_OUTPUT, Failure
from podium.core.jsonvalues import (
    NotJsonCompatible,
    TooLarge,
    check_json_size,
    flat_json_copy,
    json_compatible,
    json_depth,
)
from podium.core.limits import LIMIT_EXCEEDED
from podium.core.schemas import first_violation
from podium.plugins.api import Agent, AgentError, agent_schema

# The instants a wait may end at: those datetime and Timestamp can show
# (years 1 to 9999).
_EARLIEST_INSTANT = datetime.datetime(1, 1, 1, tzinfo=datetime.UTC).timestamp()
_LATEST_INSTANT = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC).timestamp()


class StepFailed(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def truthy(value: Any) -> bool:
    return value is True or (value not in (False, None, 0, "", [], {}) and bool(value))


def instant(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise StepFailed(
        Failure(INVALID_INPUT, f"wait.time_expression gave {value!r}, not a timestamp", False)
    )


def check_instant(due: float) -> None:
    """A wait must end at an instant a timestamp can show (NaN, 1e300 or the
    largest Duration cannot be)."""
    if not (math.isfinite(due) and _EARLIEST_INSTANT <= due <= _LATEST_INSTANT):
        message = f"the wait would end at {due:g}s since 1970, outside the years 1 to 9999"
        raise StepFailed(Failure(INVALID_INPUT, message, False))


def iso(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.isoformat().replace("+00:00", "Z")


def cache_key(tenant: str, agent: str, version: str, inputs: Any, config: Any) -> str:
    """The step cache's key. The tenant is part of it: a tenant never gets an
    output another tenant's run computed (and perhaps paid for)."""
    canonical = json.dumps(
        [agent, version, inputs, config, tenant], sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def json_output(value: Any) -> Any:
    """Agents must return what JSON can hold, within the server's output size
    and depth limits; anything else fails the attempt."""
    limit = limits.current()
    if limit.max_output_depth >= 1:
        flat = flat_json_copy(value, limit.max_output_bytes)
        if flat is not None:
            return flat
    # Before the conversion: its own recursion would fail on a value nested
    # deeply enough, with a less helpful message.
    depth = json_depth(value, limit.max_output_depth)
    if depth > limit.max_output_depth:
        raise AgentError(
            f"agent output nests lists and maps deeper than {limit.max_output_depth} levels"
            " (the server's max_output_depth)",
            code=INVALID_OUTPUT,
            retryable=False,
        )
    try:
        return json_compatible(value, max_bytes=limit.max_output_bytes)
    except TooLarge as error:
        raise AgentError(
            f"agent output is too large: {error} (the server's max_output_bytes)",
            code=INVALID_OUTPUT,
            retryable=False,
        ) from None
    except NotJsonCompatible as error:
        raise AgentError(
            f"agent output is not JSON-compatible: {error}", code=INVALID_OUTPUT, retryable=False
        ) from None


def check_agent_input(agent: Agent, value: Any) -> None:
    """An in-process agent's declared input_schema, checked before it runs
    (a worker's agent is checked by the pool)."""
    problem = first_violation(agent_schema(agent, "input_schema"), value)
    if problem is not None:
        raise AgentError(
            f"the step's input violates agent {agent.name!r}'s input_schema: {problem}",
            code=INVALID_INPUT,
            retryable=False,
        )


def check_output_schemas(
    value: Any, step_schema: Mapping[str, Any] | None, agent: Agent | None, in_process: bool
) -> None:
    """An output checked against the step's output_schema and, when its agent
    ran in-process, against the agent's own (the pool checks a worker's)."""
    if in_process and agent is not None:
        problem = first_violation(agent_schema(agent, "output_schema"), value)
        if problem is not None:
            raise AgentError(
                f"agent {agent.name!r} returned output that violates its output_schema: {problem}",
                code=INVALID_OUTPUT,
                retryable=False,
            )
    problem = first_violation(step_schema, value)
    if problem is not None:
        raise AgentError(
            f"the output violates the step's output_schema: {problem}",
            code=INVALID_OUTPUT,
            retryable=False,
        )


def oversized_output(value: Any, what: str) -> Failure | None:
    """Why a value made of JSON outputs already accepted (a fan-out's list of
    its items' outputs, a run's output) may not be stored, if it may not:
    each part may be within max_output_bytes and the whole far beyond it, and
    the whole is what is stored and sent in a reply."""
    max_bytes = limits.current().max_output_bytes
    try:
        check_json_size(value, max_bytes)
    except TooLarge as error:
        message = f"{what} is too large: {error} (the server's max_output_bytes)"
        return Failure(LIMIT_EXCEEDED, message, retryable=False)
    return None
