"""Nominal fire times: cron and interval, zones and DST, jitter, validation."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podium.engine.schedule_times import (
    ScheduleSpecError,
    fires_between,
    jitter_offset,
    next_fire,
    timing,
)

T0 = datetime(2026, 3, 27, tzinfo=UTC)


def _cron(expr: str, zone: str = "UTC", anchor: datetime = T0):  # type: ignore[no-untyped-def]
    return timing(cron=expr, interval=None, zone_name=zone, anchor=anchor)


def test_interval_fires_every_interval_from_the_anchor() -> None:
    spec = timing(cron="", interval=timedelta(minutes=5), zone_name="", anchor=T0)
    fires = fires_between(spec, T0, T0 + timedelta(minutes=16), 10)
    assert fires == [T0 + timedelta(minutes=m) for m in (5, 10, 15)]
    # Strictly after: asking at a fire gives the next one.
    assert next_fire(spec, T0 + timedelta(minutes=5)) == T0 + timedelta(minutes=10)


def test_cron_in_a_zone_fires_at_local_wall_time() -> None:
    spec = _cron("0 9 * * *", "America/New_York")
    # 09:00 EDT is 13:00 UTC.
    assert next_fire(spec, T0) == datetime(2026, 3, 27, 13, tzinfo=UTC)


def test_spring_forward_gap_fires_once_at_the_end_of_the_gap() -> None:
    # Berlin skips 02:00-03:00 local on 2026-03-29 (01:00 UTC).
    spec = _cron("30 2 * * *", "Europe/Berlin")
    fires = fires_between(spec, T0, datetime(2026, 3, 31, tzinfo=UTC), 10)
    assert fires == [
        datetime(2026, 3, 27, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # 03:00 CEST, the gap's end
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),  # 02:30 CEST
    ]


def test_fall_back_repeated_hour_fires_each_wall_time_once() -> None:
    # Berlin repeats 02:00-03:00 local on 2026-10-25 (00:00-01:00 UTC twice).
    spec = _cron("*/30 * * * *", "Europe/Berlin", datetime(2026, 10, 24, 23, tzinfo=UTC))
    fires = fires_between(spec, spec.anchor, datetime(2026, 10, 25, 2, tzinfo=UTC), 10)
    local = [f.astimezone(spec.zone).isoformat() for f in fires]
    assert local == [
        "2026-10-25T01:30:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T03:00:00+01:00",
    ]


def test_jitter_is_deterministic_and_bounded() -> None:
    jitter = timedelta(seconds=30)
    offsets = {jitter_offset("s1", T0 + timedelta(minutes=m), jitter) for m in range(50)}
    assert all(timedelta(0) <= o <= jitter for o in offsets)
    assert len(offsets) > 1
    assert jitter_offset("s1", T0, jitter) == jitter_offset("s1", T0, jitter)
    assert jitter_offset("s1", T0, timedelta(0)) == timedelta(0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cron": "not a cron", "interval": None, "zone_name": ""}, "cron"),
        ({"cron": "61 * * * *", "interval": None, "zone_name": ""}, "cron"),
        ({"cron": "0 0 30 2 *", "interval": None, "zone_name": ""}, "cron"),
        ({"cron": "", "interval": None, "zone_name": ""}, "cron"),
        ({"cron": "* * * * *", "interval": timedelta(1), "zone_name": ""}, "cron"),
        ({"cron": "", "interval": timedelta(0), "zone_name": ""}, "interval"),
        ({"cron": "", "interval": timedelta(seconds=-1), "zone_name": ""}, "interval"),
        ({"cron": "* * * * *", "interval": None, "zone_name": "Mars/Olympus"}, "time_zone"),
        ({"cron": "* * * * *", "interval": None, "zone_name": "x" * 300}, "time_zone"),
        ({"cron": "* * * * *", "interval": None, "zone_name": "../etc/passwd"}, "time_zone"),
    ],
)
def test_bad_timing_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ScheduleSpecError) as info:
        timing(anchor=T0, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


CRONS = ["*/7 * * * *", "30 2 * * *", "0 */3 * * 1-5", "15,45 1,2,3 * * *", "0 0 1 * *"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]


@settings(max_examples=100, deadline=None)
@given(
    expr=st.sampled_from(CRONS),
    zone=st.sampled_from(ZONES),
    start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)),
    hours=st.integers(min_value=1, max_value=24 * 8),
)
def test_fires_are_strictly_increasing_and_never_repeat(
    expr: str, zone: str, start: datetime, hours: int
) -> None:
    spec = _cron(expr, zone, start.replace(tzinfo=UTC))
    fires = fires_between(spec, spec.anchor, spec.anchor + timedelta(hours=hours), 2000)
    assert all(a < b for a, b in itertools.pairwise(fires))
    assert all(f > spec.anchor for f in fires)
    # Resuming from any fire gives the same sequence (what a restart relies on).
    if len(fires) > 2:
        assert fires_between(spec, fires[1], fires[-1], 2000) == fires[2:]
