"""What PostgreSQL needs beyond the shared codec (podium.store.codec).

PostgreSQL text cannot hold NUL, which a client may send in a string that is
stored as a column of its own (a request id, a label): such a string is
stored with U+FFFD in its place (rows of JSON text escape NUL and are exact).
Runs also carry their labels as JSONB for the indexed label filter.
"""

from __future__ import annotations

import json
from typing import Any

from podium.core.model import RunRecord
from podium.store import codec

RUN_COLUMNS = codec.RUN_COLUMNS + ", labels_filter"

_REQUEST_ID = codec.RUN_COLUMNS.replace(" ", "").split(",").index("request_id")


def text(value: str) -> str:
    """A string PostgreSQL can store as text."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def labels_filter(labels: dict[str, str]) -> str:
    """Labels as a JSONB document (for `labels_filter @> ...`)."""
    return json.dumps({text(key): text(value) for key, value in labels.items()})


def run_row(run: RunRecord) -> tuple[Any, ...]:
    row = list(codec.run_row(run))
    if row[_REQUEST_ID] is not None:
        row[_REQUEST_ID] = text(row[_REQUEST_ID])
    return (*row, labels_filter(run.labels))
