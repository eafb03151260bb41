"""How exceptions raised by agents and providers become recorded failures."""

from __future__ import annotations

from podium.engine.model import Failure
from podium.plugins.api import AgentError, ProviderError

# Provider faults that a later attempt may not hit again.
_TRANSIENT_PROVIDER_KINDS = frozenset(
    {"rate_limited", "overloaded", "server_error", "timeout", "connection"}
)


def failure_from_exception(error: BaseException) -> Failure:
    message = str(error) or type(error).__name__
    if isinstance(error, ProviderError):
        return Failure(error.code, message, error.kind in _TRANSIENT_PROVIDER_KINDS)
    if isinstance(error, AgentError):
        return Failure(error.code, message, error.retryable)
    return Failure(type(error).__name__, message, True)
