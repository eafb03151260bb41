"""When a schedule fires: nominal times from a cron expression or an interval, in a zone.

Pure functions of their arguments (no clock, no store), so the scheduler, the
servicer's validation and the tests share one definition of "the next fire".

Cron expressions are evaluated by croniter on *local wall-clock* times without a
zone; the zone's DST rules are applied here, one rule each way:

- a wall time that does not exist (the hour skipped when clocks go forward) fires
  at the first instant after the gap, once, like vixie cron: a daily 02:30 job
  still runs on the day of the change;
- a wall time that exists twice (the hour repeated when clocks go back) fires
  once, at its first occurrence.

Intervals are elapsed time, counted from the schedule's anchor: DST does not move
them. Every function returns times strictly after the one it is given, so fires
are strictly increasing and never repeat.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# croniter (and dateutil with it) loads with the first cron expression: a
# server with no cron schedule never needs it.

# A cron expression whose next wall time lies further than this many candidates
# away (each skipped because it is not after the given instant) is treated as
# one that never fires: it bounds the work of a single call.
_MAX_CANDIDATES = 10_000


class ScheduleSpecError(ValueError):
    """A schedule's timing is invalid; `field` names the request field at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Timing:
    """Exactly one of `cron` and `interval` is set."""

    cron: str | None
    interval: timedelta | None
    zone: ZoneInfo
    # Interval fires are anchor + k * interval (k >= 1).
    anchor: datetime


def parse_zone(name: str) -> ZoneInfo:
    """The zone named `name` ("" is UTC)."""
    if not name:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        # OSError: a name too long for a file name; ValueError: a path-like name.
        raise ScheduleSpecError("time_zone", f"unknown time zone {name!r}") from exc


def timing(*, cron: str, interval: timedelta | None, zone_name: str, anchor: datetime) -> Timing:
    """Checks and builds a Timing; raises ScheduleSpecError naming the bad field."""
    zone = parse_zone(zone_name)
    if cron and interval is not None:
        raise ScheduleSpecError("cron", "set either cron or interval, not both")
    if not cron and interval is None:
        raise ScheduleSpecError("cron", "a schedule needs a cron expression or an interval")
    if interval is not None:
        if interval <= timedelta(0):
            raise ScheduleSpecError("interval", "the interval must be greater than zero")
        return Timing(cron=None, interval=interval, zone=zone, anchor=_utc(anchor))
    if len(cron.split()) != 5:
        raise ScheduleSpecError(
            "cron", "a cron expression has five fields: minute hour day-of-month month day-of-week"
        )
    from croniter import CroniterBadCronError, CroniterError, croniter

    try:
        croniter(cron, datetime(2000, 1, 1))
    except (CroniterBadCronError, CroniterError, ValueError, KeyError) as exc:
        raise ScheduleSpecError("cron", f"bad cron expression {cron!r}: {exc}") from exc
    spec = Timing(cron=cron, interval=None, zone=zone, anchor=_utc(anchor))
    # An expression such as "0 0 30 2 *" parses but never fires.
    if next_fire(spec, spec.anchor) is None:
        raise ScheduleSpecError("cron", f"cron expression {cron!r} never fires")
    return spec


def next_fire(spec: Timing, after: datetime) -> datetime | None:
    """The first nominal time strictly after `after` (UTC), or None if there is none."""
    after = _utc(after)
    if spec.interval is not None:
        if after < spec.anchor:
            return spec.anchor + spec.interval
        steps = (after - spec.anchor) // spec.interval + 1
        return spec.anchor + steps * spec.interval
    assert spec.cron is not None
    local = after.astimezone(spec.zone).replace(tzinfo=None)
    from croniter import CroniterBadDateError, croniter

    try:
        it = croniter(spec.cron, local)
        for _ in range(_MAX_CANDIDATES):
            wall: datetime = it.get_next(datetime)
            instant = _instant(wall, spec.zone)
            if instant > after:
                return instant
    except CroniterBadDateError:
        return None
    return None


def fires_between(spec: Timing, after: datetime, until: datetime, limit: int) -> list[datetime]:
    """Nominal times in (after, until], at most `limit` of them, oldest first."""
    out: list[datetime] = []
    at = _utc(after)
    until = _utc(until)
    while len(out) < limit:
        nxt = next_fire(spec, at)
        if nxt is None or nxt > until:
            break
        out.append(nxt)
        at = nxt
    return out


def jitter_offset(schedule_id: str, nominal: datetime, jitter: timedelta) -> timedelta:
    """A delay in [0, jitter] that depends only on the schedule and the fire.

    Deterministic so that every server (and a restarted one) agrees on when a
    fire is due, which the cluster claim relies on.
    """
    if jitter <= timedelta(0):
        return timedelta(0)
    key = f"{schedule_id}|{_utc(nominal).isoformat()}".encode()
    draw = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
    span_us = jitter // timedelta(microseconds=1)
    return timedelta(microseconds=draw % (span_us + 1))


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall time; see the module's DST rules."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    # A wall time in a gap does not survive the round trip: zoneinfo maps it
    # with the offset before the gap, i.e. to an instant after the gap's start.
    if first.astimezone(zone).replace(tzinfo=None) != wall:
        # The first instant after the gap: the gap starts where the offset
        # changes; the wall time read with the earlier offset lands past it, so
        # step back to the transition itself.
        return _gap_end(first, zone)
    return first


def _gap_end(instant: datetime, zone: ZoneInfo) -> datetime:
    """The instant at which the DST gap that `instant` falls in ended."""
    # Offsets change on whole minutes in every zone tzdata knows; search the
    # hours before it minute by minute for the change (a gap is at most a day).
    before = instant.astimezone(zone).utcoffset()
    probe = instant
    for _ in range(24 * 60):
        earlier = probe - timedelta(minutes=1)
        if earlier.astimezone(zone).utcoffset() != before:
            return probe
        probe = earlier
    return instant


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
