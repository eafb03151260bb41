"""What a step's values must be: a condition's truth, a wait's instant, an
agent's output (JSON, within the size limit), a cache key; and StepFailed,
how any of them fails the step."""

from __future__ import annotations

import datetime
import hashlib
import json
import math
from typing import Any

from podium.core.failures import INVALID_INPUT, INVALID_OUTPUT, Failure
from podium.core.jsonvalues import NotJsonCompatible, TooLarge, json_compatible
from podium.plugins.api import AgentError

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


def cache_key(agent: str, version: str, inputs: Any, config: Any) -> str:
    canonical = json.dumps([agent, version, inputs, config], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def json_output(value: Any, max_bytes: int) -> Any:
    """Agents must return what JSON can hold, within the server's output size
    limit; anything else fails the attempt."""
    try:
        return json_compatible(value, max_bytes=max_bytes)
    except TooLarge as error:
        raise AgentError(
            f"agent output is too large: {error} (the server's max_output_bytes,"
            " PODIUM_MAX_OUTPUT_BYTES)",
            code=INVALID_OUTPUT,
            retryable=False,
        ) from None
    except NotJsonCompatible as error:
        raise AgentError(
            f"agent output is not JSON-compatible: {error}", code=INVALID_OUTPUT, retryable=False
        ) from None
