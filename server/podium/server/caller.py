"""The principal of the call being served, set by the identity interceptor
for the duration of the handler (servicers read it; nothing else sets it)."""

from __future__ import annotations

from contextvars import ContextVar

from podium.identity.principal import ANONYMOUS, Principal

_CALLER: ContextVar[Principal] = ContextVar("podium_caller", default=ANONYMOUS)


def current_caller() -> Principal:
    return _CALLER.get()


def set_caller(principal: Principal) -> object:
    return _CALLER.set(principal)


def reset_caller(token: object) -> None:
    _CALLER.reset(token)  # type: ignore[arg-type]
