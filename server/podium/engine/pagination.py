"""Page tokens: opaque, URL-safe encodings of the sort key of a page's last item."""

from __future__ import annotations

import base64
import json
from typing import Any

from podium.core.errors import FieldViolation, InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def encode_token(*key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_token(token: str) -> list[Any] | None:
    """The key of a token this server issued (None for an empty token), or
    InvalidArgument naming page_token."""
    if not token:
        return None
    padded = token + "=" * (-len(token) % 4)
    try:
        key = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, RecursionError):
        key = None
    if not isinstance(key, list):
        raise _bad_token()
    return key


def page_size(value: int) -> int:
    """The page size asked for, defaulted and capped (negative is invalid)."""
    if value < 0:
        raise InvalidArgument(
            "invalid page_size", [FieldViolation("page_size", "must not be negative")]
        )
    return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _bad_token() -> InvalidArgument:
    return InvalidArgument(
        "invalid page_token",
        [FieldViolation("page_token", "page_token is not a token this server issued")],
    )


def bad_token() -> InvalidArgument:
    """The error for a token whose key does not fit the list it is used with."""
    return _bad_token()
