"""Reading request fields: resource names and pagination, with field errors."""

from __future__ import annotations

import re

from podium.server.status import invalid
from podium.store.sqlite.store import PageToken

_WORKFLOW = re.compile(r"^workflows/([^/]+)$")
_RUN = re.compile(r"^runs/([^/]+)$")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


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


def page_size(value: int) -> int:
    if value < 0:
        raise invalid("page_size", "must not be negative")
    return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def page_key(token: str) -> list[object] | None:
    if not token:
        return None
    try:
        return PageToken.decode(token)
    except ValueError as error:
        raise invalid("page_token", str(error)) from None
