"""Log set-up: `--log-level` and `--log-format json|text`. A line about a run
carries its ids (run, step, attempt, and the trace of the run's span) as
record attributes; both formats show them."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from podium.core.errors import Unavailable

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
# Record attributes a line about a run carries (set through `extra=`).
RUN_FIELDS = ("workflow_id", "run_id", "step_id", "attempt", "item", "trace_id", "span_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def run_fields(
    run_id: str, *, workflow_id: str = "", step_id: str = "", attempt: int = 0, item: int = -1
) -> dict[str, Any]:
    """The `extra=` of a log call about a run: its ids, for both formats."""
    fields: dict[str, Any] = {"run_id": run_id}
    if workflow_id:
        fields["workflow_id"] = workflow_id
    if step_id:
        fields["step_id"] = step_id
    if attempt:
        fields["attempt"] = attempt
    if item >= 0:
        fields["item"] = item
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger,
    message, the run's ids when the line is about a run, the exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_ids(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, followed by the run's ids in brackets."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        ids = " ".join(f"{name}={value}" for name, value in _ids(record).items())
        return f"{text} [{ids}]" if ids else text


class TraceIds(logging.Filter):
    """Adds trace_id and span_id to a line about a run whose span is open."""

    def __init__(self, lookup: Callable[[str], tuple[str, str] | None]) -> None:
        super().__init__()
        self._lookup = lookup

    def filter(self, record: logging.LogRecord) -> bool:
        run_id = getattr(record, "run_id", None)
        if run_id and getattr(record, "trace_id", None) is None:
            ids = self._lookup(run_id)
            if ids is not None:
                record.trace_id, record.span_id = ids
        return True


class OneLineUnavailable(logging.Filter):
    """A background loop that logs the exception it caught gets one line, not a
    traceback, when that exception is Unavailable (the database is gone): it is
    expected then, said once by the store watch, and repeated every tick."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, Unavailable):
            record.msg = f"{record.getMessage()}: {error.message}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def parse_level(text: str) -> int:
    """A level name (debug, info, warning, error); ValueError otherwise."""
    if text.lower() not in LOG_LEVELS:
        raise ValueError(f"unknown log level {text!r} (one of {', '.join(LOG_LEVELS)})")
    return int(getattr(logging, text.upper()))


def configure_logging(
    level: str = "info", format: str = "text", stream: IO[str] | None = None
) -> logging.Handler:
    """Sends Podium's logs (and everything else's) to `stream` (stderr) in
    `format`; replaces the root logger's handlers. Returns the handler (a
    TraceIds filter may be added to it once tracing is set up)."""
    if format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {format!r} (one of {', '.join(LOG_FORMATS)})")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    handler.addFilter(OneLineUnavailable())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(parse_level(level))
    return handler


def _ids(record: logging.LogRecord) -> dict[str, Any]:
    """The run's ids a record carries (item only for a fan-out's or loop's)."""
    ids: dict[str, Any] = {}
    for name in RUN_FIELDS:
        value = getattr(record, name, None)
        if value is None or value == "" or (name == "item" and value == -1):
            continue
        ids[name] = value
    return ids


def _iso(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"
