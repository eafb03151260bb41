"""The `current_time` tool: the current date and time in a time zone."""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Callable, Mapping
from typing import Any

from podium.plugins.api import Tool

DEFAULT_ZONE = "UTC"

PARAMETERS: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "timezone": {
            "type": "string",
            "description": "An IANA time zone such as 'Europe/Paris' (default: UTC).",
        }
    },
    "additionalProperties": False,
}


class TimeZoneError(ValueError):
    """The time zone is not a known IANA zone."""


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def zone(name: str) -> datetime.tzinfo:
    """The zone named `name`, or raises TimeZoneError."""
    if name in ("UTC", "Z"):
        return datetime.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise TimeZoneError(
            f"unknown time zone {name!r} (an IANA name, e.g. Europe/Paris)"
        ) from None


def current_time_tool(now: Callable[[], datetime.datetime] = _utc_now) -> Tool:
    """The tool, reading the time from `now` (an aware datetime; tests pin it)."""

    async def call(arguments: Mapping[str, Any]) -> dict[str, Any]:
        name = arguments.get("timezone", DEFAULT_ZONE)
        if name is None:
            name = DEFAULT_ZONE
        if not isinstance(name, str) or not name.strip():
            raise TimeZoneError("`timezone` must be a non-empty string")
        name = name.strip()
        local = now().astimezone(zone(name))
        offset = local.utcoffset() or datetime.timedelta(0)
        return {
            "time": local.isoformat(timespec="seconds"),
            "timezone": name,
            "utc_offset": _format_offset(offset),
            "weekday": local.strftime("%A"),
        }

    return Tool(
        name="current_time",
        description="Returns the current date and time (ISO 8601) in a time zone.",
        parameters=PARAMETERS,
        call=call,
    )


def _format_offset(offset: datetime.timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


CURRENT_TIME_TOOL = current_time_tool()
