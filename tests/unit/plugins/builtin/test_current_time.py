"""The builtin current_time tool: UTC by default, any IANA zone with its
offset, invalid zones refused, the real clock read."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from podium.plugins.api import Tool
from podium.plugins.builtin.current_time import (
    CURRENT_TIME_TOOL,
    TimeZoneError,
    current_time_tool,
)


async def call(tool: Tool, **arguments: Any) -> Any:
    return await tool.call(arguments)


NOON_UTC = datetime.datetime(2025, 7, 14, 12, 0, 30, tzinfo=datetime.UTC)


PINNED = current_time_tool(lambda: NOON_UTC)


async def test_current_time_defaults_to_utc() -> None:
    for arguments in ({}, {"timezone": None}, {"timezone": "UTC"}):
        assert await PINNED.call(arguments) == {
            "time": "2025-07-14T12:00:30+00:00",
            "timezone": "UTC",
            "utc_offset": "+00:00",
            "weekday": "Monday",
        }


@pytest.mark.parametrize(
    ("zone", "time", "offset"),
    [
        ("Europe/Paris", "2025-07-14T14:00:30+02:00", "+02:00"),
        ("America/New_York", "2025-07-14T08:00:30-04:00", "-04:00"),
        ("Asia/Kolkata", "2025-07-14T17:30:30+05:30", "+05:30"),
    ],
)
async def test_current_time_in_a_zone(zone: str, time: str, offset: str) -> None:
    result = await call(PINNED, timezone=zone)
    assert result["time"] == time
    assert result["timezone"] == zone
    assert result["utc_offset"] == offset
    parsed = datetime.datetime.fromisoformat(result["time"])
    assert parsed == NOON_UTC


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe/", "../etc/passwd", "", "  ", 5])
async def test_current_time_rejects_an_invalid_zone(zone: Any) -> None:
    with pytest.raises(TimeZoneError):
        await call(PINNED, timezone=zone)


async def test_current_time_reads_the_clock() -> None:
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    result = await call(CURRENT_TIME_TOOL, timezone="Europe/Paris")
    after = datetime.datetime.now(datetime.UTC)
    assert before <= datetime.datetime.fromisoformat(result["time"]) <= after
