"""The SDK's errors and response headers as Podium understands them."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

import anthropic
import httpx2

from podium.plugins.api import ProviderError

__all__ = ["provider_error", "rate_limits", "retry_after", "stream_broken"]

# Anthropic's `error.type` -> Podium's kind, for errors whose status says
# nothing (an `error` event inside a stream that began with 200).
_KINDS_BY_TYPE: Mapping[str, str] = {
    "rate_limit_error": "rate_limited",
    "overloaded_error": "overloaded",
    "api_error": "server_error",
    "timeout_error": "timeout",
    "authentication_error": "authentication",
    "permission_error": "authentication",
    "invalid_request_error": "bad_request",
    "not_found_error": "bad_request",
    "request_too_large": "bad_request",
}


def provider_error(
    error: anthropic.AnthropicError, *, charge_reservation: bool = False
) -> ProviderError:
    """The ProviderError for an error the SDK raised. With `charge_reservation`
    (the call had started streaming, so may be billed) governance charges the
    call's reservation."""
    if isinstance(error, anthropic.APITimeoutError):
        return ProviderError(
            f"Anthropic did not answer in time: {error}",
            kind="timeout",
            charge_reservation=charge_reservation,
        )
    if isinstance(error, anthropic.APIConnectionError):
        return ProviderError(
            f"cannot reach Anthropic: {error}",
            kind="connection",
            charge_reservation=charge_reservation,
        )
    if isinstance(error, anthropic.APIStatusError):
        kind = _kind(error.status_code, error.type)
        status = error.status_code if error.status_code >= 400 else None
        wait = (
            retry_after(error.response.headers) if kind in ("rate_limited", "overloaded") else None
        )
        said = error.api_message or error.message
        where = f"answered {status}" if status is not None else "broke off its stream"
        return ProviderError(
            f"Anthropic {where}: {said}",
            kind=kind,
            status=status,
            retry_after=wait,
            charge_reservation=charge_reservation,
        )
    if isinstance(error, anthropic.CredentialsError):
        return ProviderError(f"Anthropic credentials: {error}", kind="authentication")
    return ProviderError(
        f"Anthropic call failed: {type(error).__name__}: {error}",
        kind="server_error",
        charge_reservation=charge_reservation,
    )


def _kind(status: int, error_type: str | None) -> str:
    if status == 429:
        return "rate_limited"
    if status == 529:
        return "overloaded"
    if status in (401, 403):
        return "authentication"
    if status == 408:
        return "timeout"
    if status >= 500:
        # A 500 whose body says overloaded_error is an overload all the same.
        return "overloaded" if error_type == "overloaded_error" else "server_error"
    if status >= 400:
        return "bad_request"
    # An error event within a stream: the HTTP status was a success.
    return _KINDS_BY_TYPE.get(error_type or "", "server_error")


def stream_broken(error: Exception) -> ProviderError:
    """A stream that failed after it began: the call may be billed although
    its usage never arrived, so governance charges its whole reservation."""
    if isinstance(error, anthropic.AnthropicError):
        return provider_error(error, charge_reservation=True)
    kind = "timeout" if isinstance(error, httpx2.TimeoutException) else "connection"
    return ProviderError(
        f"the Anthropic stream broke before its usage arrived: {type(error).__name__}: {error}",
        kind=kind,
        charge_reservation=True,
    )


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from `retry-after-ms`, or `retry-after` in seconds or
    as an HTTP date."""
    milliseconds = _number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment.timestamp() - time.time(), 0.0)


def rate_limits(headers: Mapping[str, str]) -> tuple[int | None, int | None]:
    """(requests, tokens) left of the rate limits, as Anthropic reports them."""
    return (
        _count(headers.get("anthropic-ratelimit-requests-remaining")),
        _count(headers.get("anthropic-ratelimit-tokens-remaining")),
    )


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number >= 0 and number != float("inf") else None


def _count(value: str | None) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None
