"""Circuit breakers: stop calling a provider, model or agent that keeps
failing, and let one probe through after a cooldown.

A breaker opens on the provider's faults only. A caller's 4xx proves the
provider is up, so it counts as a success; a 429 is quota feedback, neither
success nor failure.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from podium.core.clock import Clock
from podium.core.model import DEFAULT_TENANT
from podium.plugins.api import ProviderError

__all__ = [
    "BreakerBoard",
    "BreakerSettings",
    "BreakerState",
    "BreakerView",
    "CircuitBreaker",
    "Outcome",
    "TransitionCallback",
    "classify",
]

Outcome = Literal["failure", "ignored", "success"]
# (breaker name, old state, new state, cause)
TransitionCallback = Callable[[str, str, str, str], None]

_FAILURE_KINDS = frozenset({"overloaded", "server_error", "timeout", "connection"})
_CALLER_KINDS = frozenset({"bad_request", "authentication"})


class BreakerState(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """Count mode (`failure_threshold` consecutive failures) and rate mode
    (`failure_rate` of at least `min_calls` calls within `window` seconds)
    may both be on; either one opens the breaker."""

    failure_threshold: int | None = 5
    failure_rate: float | None = None
    window: float = 60.0
    min_calls: int = 10
    cooldown: float = 30.0

    def __post_init__(self) -> None:
        if self.failure_threshold is None and self.failure_rate is None:
            raise ValueError("give failure_threshold or failure_rate")
        if self.failure_threshold is not None and self.failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if self.failure_rate is not None and not 0 < self.failure_rate <= 1:
            raise ValueError("failure_rate must be in (0, 1]")
        if self.window <= 0 or self.cooldown < 0 or self.min_calls < 1:
            raise ValueError("window must be > 0, cooldown >= 0, min_calls >= 1")


@dataclass(frozen=True, slots=True)
class BreakerView:
    name: str
    state: BreakerState
    consecutive_failures: int
    calls_in_window: int
    failures_in_window: int
    retry_in: float | None
    # Why the breaker is in its state ("3 consecutive failures (last: timeout)", "probe
    # succeeded", "reset"); empty for one that never changed state.
    cause: str
    tenant: str = DEFAULT_TENANT
    # The latest failure it counted, whatever its state (a closed breaker's near misses).
    last_failure: str = ""


def classify(error: BaseException) -> Outcome:
    """How an error of a call counts for the breakers."""
    if isinstance(error, ProviderError):
        if error.kind == "rate_limited":
            return "ignored"
        if error.kind in _FAILURE_KINDS:
            return "failure"
        if error.kind in _CALLER_KINDS:
            return "success"
        # An unknown kind: fall back on the HTTP status when there is one.
        if error.status == 429:
            return "ignored"
        if error.status is not None and 400 <= error.status < 500:
            return "success"
        return "failure"
    if isinstance(error, asyncio.CancelledError):
        # Our own cancellation says nothing about the provider's health.
        return "ignored"
    # Timeouts (TimeoutError, DeadlineExceeded), lost connections and a
    # provider plugin's own bugs are all faults of the provider as the engine
    # sees it; KeyboardInterrupt and the like say nothing about it.
    if isinstance(error, Exception):
        return "failure"
    return "ignored"


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        settings: BreakerSettings,
        clock: Clock,
        on_transition: TransitionCallback | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> None:
        self.name = name
        self.tenant = tenant
        self.settings = settings
        self._clock = clock
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        # (monotonic time, failed) of calls within the rate window.
        self._calls: deque[tuple[float, bool]] = deque()
        self._opened_at = 0.0
        self._probing = False
        self._cause = ""
        self._last_failure = ""
        # Cluster mode (breakers shared through the database): told of every
        # change of state made here; the wall time of the last shared change known.
        self.on_moved: Callable[[CircuitBreaker], None] | None = None
        self.shared_changed = 0.0

    @property
    def state(self) -> BreakerState:
        """The state now; an OPEN breaker whose cooldown elapsed reads HALF_OPEN."""
        if (
            self._state is BreakerState.OPEN
            and self._clock.monotonic() >= self._opened_at + self.settings.cooldown
        ):
            self._move(BreakerState.HALF_OPEN, "cooldown elapsed")
        return self._state

    def allow(self) -> bool:
        """May a call go through now? HALF_OPEN lets exactly one probe in
        until its outcome is recorded."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def retry_in(self) -> float | None:
        """Seconds until an OPEN breaker lets a probe in; None otherwise."""
        if self.state is not BreakerState.OPEN:
            return None
        return max(self._opened_at + self.settings.cooldown - self._clock.monotonic(), 0.0)

    def record(self, outcome: Outcome, cause: str = "") -> None:
        if outcome == "failure":
            self.record_failure(cause)
        elif outcome == "success":
            self.record_success()
        else:
            self.record_ignored()

    def record_success(self) -> None:
        state = self.state
        if state is BreakerState.HALF_OPEN:
            self._move(BreakerState.CLOSED, "probe succeeded")
        elif state is BreakerState.CLOSED:
            self._consecutive = 0
            self._note(failed=False)
        # OPEN: a late result of a call let in before the breaker opened; the
        # cooldown stands.

    def record_failure(self, cause: str) -> None:
        self._last_failure = cause
        state = self.state
        if state is BreakerState.HALF_OPEN:
            self._move(BreakerState.OPEN, f"probe failed: {cause}")
        elif state is BreakerState.CLOSED:
            self._consecutive += 1
            self._note(failed=True)
            trip = self._trip_reason()
            if trip:
                self._move(BreakerState.OPEN, f"{trip} (last: {cause})")

    def record_ignored(self) -> None:
        """A call that says nothing about health (429, our cancellation): a
        probe that ended so leaves room for the next probe."""
        if self._state is BreakerState.HALF_OPEN:
            self._probing = False

    def reset(self) -> None:
        """Closes the breaker by hand (an operator knows the provider is back)."""
        if self._state is BreakerState.CLOSED:
            self._clear()
        else:
            self._move(BreakerState.CLOSED, "reset")

    def adopt(self, state: BreakerState, opened_ago: float = 0.0) -> None:
        """Takes the state another server decided (cluster mode), without telling
        anyone: OPEN as opened `opened_ago` seconds ago (its cooldown ends when the
        other server's does), or CLOSED (its probe succeeded)."""
        if state is BreakerState.OPEN:
            self._state = BreakerState.OPEN
            self._opened_at = self._clock.monotonic() - max(0.0, opened_ago)
            self._probing = False
        elif state is BreakerState.CLOSED and self._state is not BreakerState.CLOSED:
            self._state = BreakerState.CLOSED
            self._clear()

    @property
    def cause(self) -> str:
        """Why the breaker is in its state."""
        return self._cause

    @property
    def state_recorded(self) -> BreakerState:
        """The state as last moved to (an elapsed cooldown not yet applied)."""
        return self._state

    @property
    def probing(self) -> bool:
        """Whether this server's probe is out (HALF_OPEN, its slot taken)."""
        return self._probing

    def view(self) -> BreakerView:
        state = self.state
        self._prune()
        failures = sum(1 for _, failed in self._calls if failed)
        return BreakerView(
            self.name,
            state,
            self._consecutive,
            len(self._calls),
            failures,
            self.retry_in(),
            self._cause,
            self.tenant,
            self._last_failure,
        )

    # -- internals ----------------------------------------------------------

    def _trip_reason(self) -> str:
        settings = self.settings
        if settings.failure_threshold is not None and (
            self._consecutive >= settings.failure_threshold
        ):
            return f"{self._consecutive} consecutive failures"
        if settings.failure_rate is not None:
            self._prune()
            calls = len(self._calls)
            failures = sum(1 for _, failed in self._calls if failed)
            if calls >= settings.min_calls and failures / calls >= settings.failure_rate:
                return f"{failures} of {calls} calls failed in {settings.window:g}s"
        return ""

    def _note(self, *, failed: bool) -> None:
        self._calls.append((self._clock.monotonic(), failed))
        self._prune()

    def _prune(self) -> None:
        horizon = self._clock.monotonic() - self.settings.window
        while self._calls and self._calls[0][0] <= horizon:
            self._calls.popleft()

    def _clear(self) -> None:
        self._consecutive = 0
        self._calls.clear()
        self._probing = False

    def _move(self, new: BreakerState, cause: str) -> None:
        old = self._state
        self._state = new
        self._cause = cause
        self._probing = False
        if new is BreakerState.OPEN:
            self._opened_at = self._clock.monotonic()
        elif new is BreakerState.CLOSED:
            self._clear()
        # Called last, so a callback that reads the breaker sees the new state.
        if self._on_transition is not None and old is not new:
            self._on_transition(self.name, old.value, new.value, cause)
        if self.on_moved is not None and old is not new:
            self.on_moved(self)


class BreakerBoard:
    """Every breaker of the server, created on first use, by tenant and name
    ("provider:openai", "model:openai/gpt-4o", "agent:llm"). Each tenant has
    its own: one tenant's failing traffic (or revoked key) opens its breakers
    only, and never cuts another tenant off the same provider."""

    def __init__(
        self,
        default_settings: BreakerSettings,
        overrides: Mapping[str, BreakerSettings],
        clock: Clock,
        on_transition: TransitionCallback | None = None,
    ) -> None:
        self._default = default_settings
        self._overrides = dict(overrides)
        self._clock = clock
        self._on_transition = on_transition
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}
        self._known: frozenset[str] = frozenset()
        # Cluster mode: given to every breaker (see CircuitBreaker.on_moved).
        self.on_moved: Callable[[CircuitBreaker], None] | None = None

    def breaker(self, name: str, tenant: str = DEFAULT_TENANT) -> CircuitBreaker:
        breaker = self._breakers.get((tenant, name))
        if breaker is None:
            settings = self._overrides.get(name, self._default)
            breaker = CircuitBreaker(name, settings, self._clock, self._on_transition, tenant)
            breaker.on_moved = self.on_moved
            self._breakers[(tenant, name)] = breaker
        return breaker

    def update(
        self, default_settings: BreakerSettings, overrides: Mapping[str, BreakerSettings]
    ) -> None:
        """New settings at runtime; breakers keep their state and counters."""
        self._default = default_settings
        self._overrides = dict(overrides)
        for (_, name), breaker in self._breakers.items():
            breaker.settings = self._overrides.get(name, self._default)

    def known(self) -> list[str]:
        """The breakers that exist before any call: those of the configured providers and
        models (see `configure_known`) and those the settings name."""
        return sorted({*self._known, *self._overrides})

    def configure_known(self, names: Iterable[str]) -> None:
        """The breakers that govern the configured providers and models
        ("provider:openai", "model:openai/gpt-4o"), listed before any call uses them."""
        self._known = frozenset(names)

    def list(self, tenant: str | None = None) -> list[BreakerView]:
        """One tenant's breakers, or every tenant's (None), by tenant and name: those
        calls have used, and the known ones (closed and unused until a call uses them;
        for the default tenant when listing every tenant)."""
        shown = {tenant or DEFAULT_TENANT: set(self.known())}
        for breaker_tenant, name in self._breakers:
            if tenant is None or breaker_tenant == tenant:
                shown.setdefault(breaker_tenant, set()).add(name)
        views = []
        for breaker_tenant in sorted(shown):
            for name in sorted(shown[breaker_tenant]):
                existing = self._breakers.get((breaker_tenant, name))
                views.append(
                    existing.view()
                    if existing is not None
                    else BreakerView(name, BreakerState.CLOSED, 0, 0, 0, None, "", breaker_tenant)
                )
        return views

    def reset(self, name: str, tenant: str = DEFAULT_TENANT) -> bool:
        """Closes a tenant's breaker; False if no such breaker exists or is known."""
        breaker = self._breakers.get((tenant, name))
        if breaker is None:
            # A known breaker no call has used is closed already.
            return name in self.known()
        breaker.reset()
        return True
