"""The server's limits on what one request or one run may ask of it.

A single event loop serves every RPC and runs every step, so no definition,
runtime value or expression may make it work unboundedly. Each limit is
checked as early as its value is known: definitions when they are created
or validated (INVALID_ARGUMENT naming the limit), runtime values when the step
computes them (the step fails with LIMIT_EXCEEDED naming the limit, or
INVALID_OUTPUT when it is an agent's output).

The limits are settings of the server process: `podium serve --limit
NAME=VALUE`, else the environment variable PODIUM_NAME (upper case), else the
default below; `start_server(limits=...)` takes them directly. They are per
process, not per engine, because plugins compile and evaluate expressions
too, outside any engine: `current()` is what every check reads.
docs/limits.md lists them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "DEFAULTS",
    "ENV_PREFIX",
    "LIMIT_EXCEEDED",
    "LimitError",
    "Limits",
    "current",
    "hold",
    "release",
]

# Failure type of a step whose runtime value broke a limit.
LIMIT_EXCEEDED = "podium.LimitExceeded"
# PODIUM_MAX_STEPS sets max_steps, and so on.
ENV_PREFIX = "PODIUM_"

_MIB = 1024 * 1024
# How deeply lists and maps may nest at most, whatever the setting: protobuf
# parses 100 message levels, a JSON level of a Struct takes three, and a
# reply wraps a value in a few levels of its own (a run's output holds each
# final step's output, a fan-out's output a list of its items' outputs).
_DEPTH_CEILING = 26
# gRPC's message sizes are 32-bit signed.
_BYTES_CEILING = 2**31 - 1


class LimitError(ValueError):
    """A limit setting that is unknown or out of its range (one line)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Every limit, with its default. `Limits.from_settings` reads them."""

    # Steps in one workflow definition (checked before the definition is even translated).
    max_steps: int = 10_000
    # Iterations of one loop step (its max_iterations may not exceed this).
    max_loop_iterations: int = 1_000
    # Items of one for_each step, checked when its items expression is evaluated.
    max_fan_out_items: int = 10_000
    # Size of one expression's result, as characters of strings and entries of
    # lists and maps counted through the whole value.
    max_expression_result_size: int = 1_000_000
    # How deeply lists and maps may nest in one expression's result.
    max_expression_result_depth: int = 24
    # How many times an expression's replace() calls with literal arguments may
    # multiply a string's length (checked when the expression is compiled).
    max_expression_growth: int = 100
    # A run's input, as JSON text (UTF-8 bytes), checked by StartRun.
    max_input_bytes: int = _MIB
    # An agent's output, a fan-out's combined output and a run's output, as
    # JSON text (UTF-8 bytes): 1 MiB keeps a GetRun holding a few such
    # outputs well under the 4 MiB every gRPC client receives by default.
    max_output_bytes: int = _MIB
    # How deeply lists and maps may nest in an agent's output.
    max_output_depth: int = 24
    # Bytes of one gRPC request the server accepts; larger ones are refused by
    # gRPC itself (RESOURCE_EXHAUSTED) before any of Podium's code runs.
    max_message_bytes: int = 4 * _MIB
    # Unary calls the server handles at once; past it, a new one is answered
    # RESOURCE_EXHAUSTED (OVERLOADED) with a retry delay.
    max_calls_in_flight: int = 4096
    # How deeply child runs (`workflow` steps) may nest: a run started by
    # StartRun is at depth 0, its children at 1; a deeper child's step fails.
    max_workflow_depth: int = 8

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            ceiling = _ceiling(field.name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= ceiling:
                raise LimitError(
                    f"limit {field.name} must be an integer from 1 to {ceiling}, not {value!r}"
                )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def from_settings(
        cls, env: Mapping[str, str] | None = None, settings: Mapping[str, str] | None = None
    ) -> Limits:
        """The limits `settings` (NAME -> text, e.g. from `--limit`) give,
        else those of `env` (PODIUM_NAME -> text), else the defaults; a
        LimitError naming the setting for an unknown name or a bad value."""
        values: dict[str, int] = {}
        for name in cls.names():
            text = (env or {}).get(ENV_PREFIX + name.upper(), "").strip()
            if text:
                values[name] = _parse(ENV_PREFIX + name.upper(), name, text)
        for name, text in (settings or {}).items():
            if name not in cls.names():
                raise LimitError(
                    f"unknown limit {name!r}; the limits are: {', '.join(cls.names())}"
                )
            values[name] = _parse(f"limit {name}", name, text)
        return cls(**values)

    def replace(self, **changes: int) -> Limits:
        return dataclasses.replace(self, **changes)

    def changed(self) -> dict[str, int]:
        """The limits that differ from their defaults (for the start-up log)."""
        return {
            name: getattr(self, name)
            for name in self.names()
            if getattr(self, name) != getattr(DEFAULTS, name)
        }


def _ceiling(name: str) -> int:
    if name.endswith("_depth"):
        return _DEPTH_CEILING
    return _BYTES_CEILING


def _parse(source: str, name: str, text: str) -> int:
    ceiling = _ceiling(name)
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if not 1 <= value <= ceiling:
        raise LimitError(f"{source} must be an integer from 1 to {ceiling}, not {text!r}")
    return value


DEFAULTS = Limits()

# The limits in force in this process, and how many servers hold them.
_current = DEFAULTS
_holders = 0


def current() -> Limits:
    """The limits every check reads: a serving server's, else the defaults."""
    return _current


def hold(limits: Limits) -> None:
    """Puts `limits` in force for a server starting in this process; a
    second server may start only with the same limits (they are per process)."""
    global _current, _holders
    if _holders and limits != _current:
        raise LimitError(
            "another server in this process runs with other limits; limits are per process"
        )
    _current = limits
    _holders += 1


def release() -> None:
    """A server holding the limits stopped; the last one restores the defaults."""
    global _current, _holders
    _holders = max(0, _holders - 1)
    if _holders == 0:
        _current = DEFAULTS
