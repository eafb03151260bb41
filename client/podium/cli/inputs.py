"""argparse `type=` converters for run inputs, labels, states and ages.

They raise ArgumentTypeError so argparse reports "argument --input: ..." as a usage error.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from podium.client.enums import run_state
from podium.client.errors import DefinitionError
from podium.v1 import run_pb2

__all__ = ["age", "amount", "json_payload", "label", "number", "run_input", "state"]


def _read_document(path: Path) -> Any:
    # The YAML loader is imported by the options that read a file, not by
    # every command that parses an age or a number (`podium serve`).
    from podium.client.definitions import read_document

    return read_document(path)


def run_input(text: str) -> dict[str, Any]:
    """A JSON object, or @FILE holding JSON or YAML."""
    if text.startswith("@"):
        try:
            document = _read_document(Path(text[1:]))
        except DefinitionError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        origin = text[1:]
    else:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise argparse.ArgumentTypeError(
                f"invalid JSON at column {error.colno}: {error.msg} (use @FILE to read a file)"
            ) from None
        origin = "input"
    if not isinstance(document, dict):
        kind = "nothing" if document is None else type(document).__name__
        raise argparse.ArgumentTypeError(f"{origin}: expected a JSON object, got {kind}")
    return document


def json_payload(text: str) -> Any:
    """Any JSON value, or @FILE holding JSON or YAML."""
    if text.startswith("@"):
        try:
            return _read_document(Path(text[1:]))
        except DefinitionError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(
            f"invalid JSON at column {error.colno}: {error.msg} (use @FILE to read a file)"
        ) from None


def label(text: str) -> tuple[str, str]:
    """KEY=VALUE."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def state(text: str) -> run_pb2.RunState.ValueType:
    """A run state name: running, SUCCEEDED, RUN_STATE_FAILED, ..."""
    try:
        return run_state(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def age(text: str) -> float:
    """A duration in seconds: 30d, 12h, 90m, 3600s or a bare number of seconds."""
    match = _AGE.match(text.strip().lower())
    seconds = float(match.group(1)) * _AGE_UNITS[match.group(2)] if match else math.nan
    if not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(
            f"expected an age such as 30d, 12h, 90m or 3600s, got {text!r}"
        )
    return seconds


def amount(text: str) -> str:
    """A USD amount such as 5.00 or 0.25, kept as text so no float rounding creeps in.

    Only the syntax is checked here; whether the amount is allowed is for the server to say.
    """
    try:
        value = Decimal(text.strip().removeprefix("$"))
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"expected an amount such as 5.00, got {text!r}")
    return str(value)


def number(text: str) -> float:
    """A finite number: 60, 0.5, -1 (the server judges the range)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    return value


def non_negative(text: str) -> int:
    """A whole number >= 0: a count or a limit."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


_WINDOWS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


def window(text: str) -> float:
    """A quota's window: second, minute, hour, day, or a number of seconds."""
    if text in _WINDOWS:
        return _WINDOWS[text]
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(
            f"expected second, minute, hour, day or a number of seconds, got {text!r}"
        )
    return seconds
