"""Reading request fields: resource names, with field errors."""

from __future__ import annotations

import re

from podium.server.status import invalid

_WORKFLOW = re.compile(r"^workflows/([^/]+)$")
_RUN = re.compile(r"^runs/([^/]+)$")
_SCHEDULE = re.compile(r"^schedules/([0-9a-f]{1,64})$")

# A reason (PauseRun, CancelRun) or an approval's comment is recorded in an
# event that every watcher replays: a sentence, not a payload (PauseRun may be
# called again and again on one run).
MAX_REASON_CHARACTERS = 1000


def workflow_id(name: str, field: str = "name") -> str:
    match = _WORKFLOW.match(name)
    if match is None:
        raise invalid(field, f"expected workflows/{{workflow_id}}, got {name!r}")
    return match.group(1)


def run_id(name: str, field: str = "name") -> str:
    match = _RUN.match(name)
    if match is None:
        raise invalid(field, f"expected runs/{{run_id}}, got {name!r}")
    return match.group(1)


def schedule_id(name: str, field: str = "name") -> str:
    match = _SCHEDULE.match(name)
    if match is None:
        raise invalid(field, f"expected schedules/{{schedule_id}}, got {name!r}")
    return match.group(1)


def reason(text: str, field: str = "reason") -> str:
    if len(text) > MAX_REASON_CHARACTERS:
        raise invalid(
            field, f"{len(text)} characters, more than the {MAX_REASON_CHARACTERS} allowed"
        )
    return text
