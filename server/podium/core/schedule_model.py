"""Schedules and their fires as stored (see podium.engine.schedule_store)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from podium.core.model import DEFAULT_TENANT

__all__ = ["FireOutcome", "FireRecord", "ScheduleRecord"]


class FireOutcome:
    """What became of a nominal time (strings, stored as they are)."""

    CLAIMED = "CLAIMED"  # due, claimed, its run not started yet
    STARTED = "STARTED"  # its run was started (run_id set)
    ENDED = "ENDED"  # its run was started and has ended since
    BUFFERED = "BUFFERED"  # waits for the schedule's running run to end
    SKIPPED = "SKIPPED"  # overlap policy skip: a run of the schedule was still running
    MISSED = "MISSED"  # older than the catch-up window when the scheduler saw it


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    schedule_id: str
    workflow_id: str
    # 0: the workflow's latest version at each fire.
    workflow_version: int
    cron: str
    # Seconds; 0 when the schedule is a cron one.
    interval: float
    time_zone: str
    input: Any
    # "SKIP" | "BUFFER_ONE" | "ALLOW"
    overlap: str
    # Seconds: fires older than this when seen are MISSED.
    catch_up_window: float
    # Seconds: each fire starts up to this much after its nominal time.
    jitter: float
    create_time: float
    # Epoch seconds of the next nominal time not yet claimed; None: never fires again.
    next_fire: float | None
    paused: bool = False
    tenant: str = DEFAULT_TENANT
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FireRecord:
    schedule_id: str
    nominal_time: float
    outcome: str
    run_id: str = ""
    # When the outcome was decided (the server's clock).
    time: float = 0.0
    # The server that claimed it and handles it ("" on a server not in a cluster);
    # another takes it over only once this one holds no live lease.
    claimer: str = ""
