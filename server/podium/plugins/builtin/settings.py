"""Reading and checking the builtin agents' step config.

Configs arrive from YAML or from a google.protobuf.Struct, where every number
is a double: an integer setting therefore accepts 3.0 as well as 3.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from podium.plugins.api import AgentError, ConfigProblem

INVALID_CONFIG = "podium.InvalidConfig"


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def as_int(value: object) -> int | None:
    """The value as an int if it is an integral number, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def unknown_settings(config: Mapping[str, Any], known: Collection[str]) -> Iterator[ConfigProblem]:
    # A misspelt setting would otherwise be silently ignored.
    for key in config:
        if key not in known:
            yield (str(key), f"unknown setting; known: {', '.join(sorted(known))}")


def check_delay(config: Mapping[str, Any]) -> Iterator[ConfigProblem]:
    delay = config.get("delay_ms")
    if delay is not None and (not is_number(delay) or delay < 0):
        yield ("delay_ms", "must be a number of milliseconds >= 0")


async def sleep_delay(config: Mapping[str, Any]) -> None:
    """Sleeps `delay_ms`, in asyncio so that cancelling the step interrupts it."""
    delay = config.get("delay_ms")
    if delay:
        await asyncio.sleep(float(delay) / 1000)


def raise_if_invalid(problems: Iterator[ConfigProblem] | list[ConfigProblem]) -> None:
    """Fails the attempt, for good, if the config is wrong: the engine may run
    a step whose config was never validated (e.g. stored before a fix)."""
    found = list(problems)
    if found:
        message = "; ".join(f"{field}: {reason}" for field, reason in found)
        raise AgentError(f"invalid config: {message}", code=INVALID_CONFIG, retryable=False)
