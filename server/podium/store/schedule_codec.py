"""A schedule's row body (JSON), shared by the SQLite and PostgreSQL backends."""

from __future__ import annotations

import json
from typing import Any

from podium.core.schedule_model import ScheduleRecord


def schedule_body(schedule: ScheduleRecord) -> str:
    return json.dumps(
        {
            "workflow_id": schedule.workflow_id,
            "workflow_version": schedule.workflow_version,
            "cron": schedule.cron,
            "interval": schedule.interval,
            "time_zone": schedule.time_zone,
            "input": schedule.input,
            "overlap": schedule.overlap,
            "catch_up_window": schedule.catch_up_window,
            "jitter": schedule.jitter,
            "create_time": schedule.create_time,
            "labels": schedule.labels,
        },
        separators=(",", ":"),
    )


def schedule_from_row(row: Any) -> ScheduleRecord:
    """A row of (tenant, schedule_id, body, paused, next_fire)."""
    body = json.loads(row[2])
    return ScheduleRecord(
        schedule_id=row[1],
        tenant=row[0],
        paused=bool(row[3]),
        next_fire=None if row[4] is None else float(row[4]),
        workflow_id=body["workflow_id"],
        workflow_version=int(body["workflow_version"]),
        cron=body["cron"],
        interval=float(body["interval"]),
        time_zone=body["time_zone"],
        input=body["input"],
        overlap=body["overlap"],
        catch_up_window=float(body["catch_up_window"]),
        jitter=float(body["jitter"]),
        create_time=float(body["create_time"]),
        labels=dict(body["labels"]),
    )
