"""Small text helpers shared by the renderings: times, durations, tokens, state colours."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from google.protobuf import message, timestamp_pb2

from podium.client.enums import run_state_label, step_state_label
from podium.client.values import to_python
from podium.v1 import common_pb2

__all__ = [
    "compact_message_json",
    "datetime_of",
    "elapsed",
    "format_duration",
    "format_time",
    "format_tokens",
    "message_json",
    "run_state_text",
    "state_style",
    "step_state_text",
    "tokens_of",
    "value_json",
]

# Colours mean the same in every table and in the live view.
_STATE_STYLES = {
    "PENDING": "dim",
    "READY": "cyan",
    "RUNNING": "bold yellow",
    "WAITING": "yellow",
    "PAUSED": "cyan",
    "SUCCEEDED": "bold green",
    "FAILED": "bold red",
    "SKIPPED": "magenta",
    "CANCELLED": "red",
}


def datetime_of(timestamp: timestamp_pb2.Timestamp) -> datetime | None:
    """The timestamp as an aware datetime, or None when it is unset (all zero)."""
    if not timestamp.seconds and not timestamp.nanos:
        return None
    return timestamp.ToDatetime(tzinfo=UTC)


def format_time(timestamp: timestamp_pb2.Timestamp) -> str:
    """Local wall time, to the second; "-" when unset."""
    moment = datetime_of(timestamp)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def format_duration(seconds: float | None) -> str:
    """ "850ms", "12.3s", "4m05s", "1h02m"; "-" for None."""
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def elapsed(
    start: timestamp_pb2.Timestamp, end: timestamp_pb2.Timestamp, now: datetime | None = None
) -> float | None:
    """Seconds from start to end, or to now while still going; None if it never started."""
    began = datetime_of(start)
    if began is None:
        return None
    finished = datetime_of(end) or now or datetime.now(UTC)
    return (finished - began).total_seconds()


def tokens_of(usage: common_pb2.Usage) -> int:
    return usage.input_tokens + usage.output_tokens


def format_tokens(count: int) -> str:
    return f"{count:,}"


def run_state_text(value: int) -> tuple[str, str]:
    """(label, rich style) for a RunState."""
    label = run_state_label(value)
    return label, _STATE_STYLES.get(label, "")


def step_state_text(value: int) -> tuple[str, str]:
    """(label, rich style) for a StepState."""
    label = step_state_label(value)
    return label, _STATE_STYLES.get(label, "")


def state_style(label: str) -> str:
    return _STATE_STYLES.get(label, "")


def message_json(msg: message.Message) -> str:
    """The proto JSON mapping with the .proto field names, as `--json` promises;
    integral numbers print as integers (4, not 4.0: the same JSON number)."""
    return json.dumps(
        to_python(msg, preserving_proto_field_name=True), indent=2, ensure_ascii=False
    )


def value_json(msg: message.Message) -> str:
    """A Struct/Value (a run's or step's output) as plain JSON text."""
    data: Any = to_python(msg, preserving_proto_field_name=True)
    return json.dumps(data, indent=2, ensure_ascii=False)


def compact_message_json(msg: message.Message) -> str:
    """The proto JSON mapping on one line (JSON Lines): .proto field names, no spaces."""
    data: Any = to_python(msg, preserving_proto_field_name=True)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
