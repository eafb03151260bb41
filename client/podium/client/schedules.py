"""Requests of ScheduleService from plain values: schedule names, overlap policies,
durations in seconds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import duration_pb2, struct_pb2

from podium.client.names import workflow_name
from podium.v1 import schedule_service_pb2

__all__ = [
    "OVERLAP_POLICIES",
    "create_schedule_request",
    "overlap_name",
    "overlap_value",
    "schedule_name",
]

OVERLAP_POLICIES = ("skip", "buffer-one", "allow")
_SCHEDULES = "schedules/"


def schedule_name(value: str) -> str:
    """ "abc" or "schedules/abc" -> "schedules/abc"."""
    value = value.strip()
    if not value:
        raise ValueError("empty schedule name")
    if value.startswith(_SCHEDULES):
        return value
    if "/" in value:
        raise ValueError(f"expected {_SCHEDULES}{{id}} or a bare id, got {value!r}")
    return _SCHEDULES + value


def overlap_value(name: str) -> schedule_service_pb2.OverlapPolicy.ValueType:
    """'skip', 'buffer-one', 'BUFFER_ONE' or 'OVERLAP_POLICY_ALLOW' -> the enum value;
    ValueError naming the known policies."""
    key = name.strip().upper().replace("-", "_")
    key = key if key.startswith("OVERLAP_POLICY_") else f"OVERLAP_POLICY_{key}"
    if key == "OVERLAP_POLICY_UNSPECIFIED" or key not in schedule_service_pb2.OverlapPolicy.keys():  # noqa: SIM118
        raise ValueError(f"unknown overlap policy {name!r} (known: {', '.join(OVERLAP_POLICIES)})")
    return schedule_service_pb2.OverlapPolicy.Value(key)


def overlap_name(value: int) -> str:
    """OVERLAP_POLICY_BUFFER_ONE -> 'buffer-one' (unspecified reads as the default, skip)."""
    if value == schedule_service_pb2.OVERLAP_POLICY_UNSPECIFIED:
        return "skip"
    name = schedule_service_pb2.OverlapPolicy.Name(value)  # type: ignore[arg-type]
    return name.removeprefix("OVERLAP_POLICY_").lower().replace("_", "-")


def _duration(seconds: float, field: str) -> duration_pb2.Duration:
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError(f"{field}: expected a finite number of seconds, got {seconds!r}")
    value = duration_pb2.Duration()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


def create_schedule_request(
    workflow: str,
    *,
    cron: str = "",
    interval_seconds: float | None = None,
    time_zone: str = "",
    input: Mapping[str, Any] | None = None,
    overlap: str = "skip",
    catch_up_window_seconds: float = 0.0,
    jitter_seconds: float = 0.0,
    labels: Mapping[str, str] | None = None,
    workflow_version: int = 0,
) -> schedule_service_pb2.CreateScheduleRequest:
    """The server checks the timing (exactly one of cron and interval, the zone) and
    the workflow, and names the field it refuses."""
    schedule = schedule_service_pb2.Schedule(
        workflow=workflow_name(workflow),
        workflow_version=workflow_version,
        cron=cron,
        time_zone=time_zone,
        overlap_policy=overlap_value(overlap),
        labels=dict(labels or {}),
    )
    if interval_seconds is not None:
        schedule.interval.CopyFrom(_duration(interval_seconds, "interval"))
    if catch_up_window_seconds:
        schedule.catch_up_window.CopyFrom(_duration(catch_up_window_seconds, "catch_up_window"))
    if jitter_seconds:
        schedule.jitter.CopyFrom(_duration(jitter_seconds, "jitter"))
    if input:
        struct = struct_pb2.Struct()
        try:
            struct.update(dict(input))
        except (ValueError, TypeError) as error:
            raise ValueError(f"input must be JSON-compatible: {error}") from None
        schedule.input.CopyFrom(struct)
    return schedule_service_pb2.CreateScheduleRequest(schedule=schedule)
