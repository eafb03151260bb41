"""What OpenAI's errors and rate-limit headers mean to Podium's governance.

The SDK never retries (max_retries=0): retries, waits and breakers are the
control plane's job, so each error is translated into a ProviderError kind
that tells governance how to react.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import replace
from email.utils import parsedate_to_datetime

import openai

from podium.plugins.api import Completion, ProviderError

__all__ = ["provider_error", "retry_after", "with_rate_limits"]

# 429s that no wait cures: the account is out of credit.
_BILLING_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})
# Codes of errors reported inside a stream (after the HTTP status was 200).
_STREAM_CODE_KINDS = {
    "rate_limit_exceeded": "rate_limited",
    "server_is_overloaded": "overloaded",
    "slow_down": "overloaded",
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def provider_error(error: openai.OpenAIError, *, mid_stream: bool = False) -> ProviderError:
    """The ProviderError for an SDK error. `mid_stream`: the error broke a
    stream after the call was accepted, so OpenAI may bill it although no
    usage arrived; governance then charges the reservation."""
    kind, status, after = _classify(error)
    message = f"OpenAI: {_message(error)}"
    if mid_stream:
        message += " (the stream broke before usage was reported)"
    return ProviderError(
        message, kind=kind, status=status, retry_after=after, charge_reservation=mid_stream
    )


def with_rate_limits(completion: Completion, headers: Mapping[str, str]) -> Completion:
    """The completion with what the x-ratelimit-remaining-* headers say is
    left of the account's limits (governance clamps its buckets to it)."""
    requests = _int(headers.get("x-ratelimit-remaining-requests"))
    tokens = _int(headers.get("x-ratelimit-remaining-tokens"))
    if requests is None and tokens is None:
        return completion
    return replace(completion, remaining_requests=requests, remaining_tokens=tokens)


def retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait before the next call: retry-after-ms, then
    retry-after (seconds or an HTTP date), then the reset time of whichever
    x-ratelimit dimension is exhausted."""
    millis = _float(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = headers.get("retry-after")
    if value is not None:
        seconds = _float(value)
        if seconds is not None:
            return seconds
        try:
            moment = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError):
            moment = None
        if moment is not None:
            return max(moment - (time.time() if now is None else now), 0.0)
    resets = [
        _duration(headers.get(f"x-ratelimit-reset-{dimension}"))
        for dimension in ("requests", "tokens")
        if _int(headers.get(f"x-ratelimit-remaining-{dimension}")) == 0
    ]
    known = [reset for reset in resets if reset is not None]
    return max(known) if known else None


def _classify(error: openai.OpenAIError) -> tuple[str, int | None, float | None]:
    if isinstance(error, openai.APITimeoutError):  # before its base class, APIConnectionError
        return "timeout", None, None
    if isinstance(error, openai.APIConnectionError):
        return "connection", None, None
    if isinstance(error, openai.APIStatusError):
        return _classify_status(error)
    if isinstance(error, openai.APIError):  # an error event inside a stream
        return _STREAM_CODE_KINDS.get(error.code or "", "server_error"), None, None
    # Raised before any request: the client could not be built.
    return "authentication", None, None


def _classify_status(error: openai.APIStatusError) -> tuple[str, int | None, float | None]:
    status = error.status_code
    headers = error.response.headers
    if status == 429:
        if error.code in _BILLING_CODES or error.type in _BILLING_CODES:
            return "authentication", status, None
        return "rate_limited", status, retry_after(headers)
    if status in (401, 403):
        return "authentication", status, None
    if status in (408, 504):
        return "timeout", status, None
    if status in (503, 529):
        return "overloaded", status, retry_after(headers)
    if status >= 500:
        return "server_error", status, None
    return "bad_request", status, None


def _message(error: openai.OpenAIError) -> str:
    if isinstance(error, openai.APIStatusError):
        return f"{error.status_code} {error.message}"
    return str(error) or type(error).__name__


def _int(value: str | None) -> int | None:
    number = _float(value)
    return int(number) if number is not None else None


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _duration(value: str | None) -> float | None:
    """OpenAI's reset durations: "20ms", "1s", "6m0s", "1h2m3.5s"."""
    if not value:
        return None
    text = value.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return _float(text)
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)
