"""The window lengths rate quotas are usually stated in, in seconds ("500 requests a minute",
"2 M tokens a day"); a quota may also give any number of seconds."""

from __future__ import annotations

__all__ = ["WINDOWS", "window_name"]

WINDOWS: dict[str, float] = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


def window_name(seconds: float) -> str:
    """ "minute" for 60, "90s" for a length without a name."""
    for name, length in WINDOWS.items():
        if length == seconds:
            return name
    return f"{seconds:g}s"
