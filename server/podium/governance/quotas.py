"""Quotas: rate limits (token buckets) and concurrency limits (leases), admitted
all or nothing.

Every method but `admit` is synchronous: the engine runs on one asyncio loop,
so a check followed by a take with no await in between cannot interleave with
another caller's.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from podium.core.clock import Clock
from podium.governance.buckets import TokenBucket
from podium.governance.scopes import CallScopes, Scope

__all__ = [
    "DIMENSIONS",
    "Admission",
    "Blocked",
    "ConcurrencyLimit",
    "Demand",
    "Dimension",
    "LeaseView",
    "QuotaBook",
    "QuotaSnapshot",
    "QuotaTimeout",
    "RateLimit",
    "RateView",
    "Take",
]

Dimension = Literal["requests", "input_tokens", "output_tokens", "tokens"]
DIMENSIONS: frozenset[str] = frozenset(get_args(Dimension))
_TOKEN_DIMENSIONS = ("input_tokens", "output_tokens", "tokens")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `per_minute` units a minute on average, and `burst` at once
    (default: one minute's worth)."""

    name: str
    scope: Scope
    dimension: Dimension
    per_minute: float
    burst: float | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a rate limit needs a name")
        if self.dimension not in DIMENSIONS:
            raise ValueError(f"{self.name}: dimension must be one of {sorted(DIMENSIONS)}")
        if not 0 < self.per_minute < math.inf:
            raise ValueError(f"{self.name}: per_minute must be > 0, got {self.per_minute}")
        if self.burst is not None and not 0 < self.burst < math.inf:
            raise ValueError(f"{self.name}: burst must be > 0, got {self.burst}")

    @property
    def capacity(self) -> float:
        return self.per_minute if self.burst is None else self.burst

    @property
    def rate_per_second(self) -> float:
        return self.per_minute / 60.0


@dataclass(frozen=True, slots=True)
class ConcurrencyLimit:
    """At most `max_concurrent` leases held at once. On a workflow scope it
    bounds running runs (see `QuotaBook.plan_run`); on any other scope it bounds
    LLM calls in flight."""

    name: str
    scope: Scope
    max_concurrent: int

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a concurrency limit needs a name")
        if self.max_concurrent < 1:
            raise ValueError(f"{self.name}: max_concurrent must be >= 1")


@dataclass(frozen=True, slots=True)
class Take:
    limit: str
    dimension: Dimension
    amount: float


@dataclass(frozen=True, slots=True)
class Demand:
    """What one call needs: bucket takes, leases, and the scopes whose
    provider "retry after" pauses apply to it."""

    takes: tuple[Take, ...]
    leases: tuple[str, ...]
    scopes: tuple[Scope, ...] = ()


@dataclass(frozen=True, slots=True)
class Blocked:
    """Why a demand cannot be admitted now. `retry_in` is the longest bucket
    wait (`inf`: never, the demand exceeds a capacity), or None when a lease
    blocks: leases free on release, not with time."""

    reason: str
    retry_in: float | None


class QuotaTimeout(Exception):
    """The demand could not be admitted before the deadline (or ever)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Pool:
    # Leases are counted on an object, not by limit name, so that a release
    # after the limit was removed or replaced decrements what it took from.
    def __init__(self, limit: ConcurrencyLimit) -> None:
        self.limit = limit
        self.in_use = 0


@dataclass(eq=False)
class Admission:
    """What was taken for one demand; give it back to `settle` and `release`."""

    demand: Demand
    _taken: list[tuple[Take, TokenBucket]] = field(repr=False)
    _pools: list[_Pool] = field(repr=False)
    settled: bool = False
    released: bool = False


@dataclass(frozen=True, slots=True)
class RateView:
    name: str
    scope: Scope
    dimension: Dimension
    per_minute: float
    burst: float
    available: float
    # Wall-clock time (clock.now()) a provider's retry-after ends, if pending.
    paused_until: float | None


@dataclass(frozen=True, slots=True)
class LeaseView:
    name: str
    scope: Scope
    in_use: int
    max_concurrent: int


@dataclass(frozen=True, slots=True)
class QuotaSnapshot:
    rates: tuple[RateView, ...]
    leases: tuple[LeaseView, ...]
    # Retry-after pauses per provider/model scope, in wall-clock time; they
    # apply even where no rate limit is configured.
    pauses: tuple[tuple[Scope, float], ...]


class QuotaBook:
    def __init__(
        self,
        limits: Sequence[RateLimit],
        concurrency: Sequence[ConcurrencyLimit],
        clock: Clock,
    ) -> None:
        self._clock = clock
        self._limits: dict[str, RateLimit] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._pools: dict[str, _Pool] = {}
        self._pauses: dict[Scope, float] = {}
        # Futures of admit() calls waiting for a lease; release() wakes them all.
        self._lease_waiters: list[asyncio.Future[None]] = []
        self.update(limits, concurrency)

    # -- configuration ------------------------------------------------------

    def update(self, limits: Sequence[RateLimit], concurrency: Sequence[ConcurrencyLimit]) -> None:
        """Replaces every limit. A bucket whose scope and dimension are
        unchanged keeps its level (capped at a smaller burst), so a reload
        never grants a fresh burst; a lease limit keeps its holders."""
        _check_unique_names(limits, concurrency)
        now = self._clock.monotonic()
        buckets: dict[str, TokenBucket] = {}
        for limit in limits:
            old = self._limits.get(limit.name)
            bucket = self._buckets.get(limit.name)
            if old is not None and bucket is not None and _same_meter(old, limit):
                if old != limit:
                    bucket.reconfigure(limit.rate_per_second, limit.capacity, now)
            else:
                bucket = TokenBucket(limit.rate_per_second, limit.capacity, now)
            buckets[limit.name] = bucket
        pools: dict[str, _Pool] = {}
        for lease in concurrency:
            pool = self._pools.get(lease.name)
            if pool is None or pool.limit.scope != lease.scope:
                pool = _Pool(lease)
            pool.limit = lease
            pools[lease.name] = pool
        self._limits = {limit.name: limit for limit in limits}
        self._buckets = buckets
        self._pools = pools
        # A larger max_concurrent may admit a waiter right away.
        self._wake_lease_waiters()

    def rate_limit(self, name: str) -> RateLimit | None:
        return self._limits.get(name)

    def concurrency_limit(self, name: str) -> ConcurrencyLimit | None:
        pool = self._pools.get(name)
        return None if pool is None else pool.limit

    def drain(self) -> None:
        """Empties every rate bucket (a restart: see TokenBucket.drain)."""
        now = self._clock.monotonic()
        for bucket in self._buckets.values():
            bucket.drain(now)

    # -- planning -----------------------------------------------------------

    def plan(self, call: CallScopes, input_tokens: int, max_output_tokens: int) -> Demand:
        """The demand of one LLM call: one request, and tokens reserved at
        their worst case (settle() gives back what was not used)."""
        amounts: dict[Dimension, float] = {
            "requests": 1.0,
            "input_tokens": float(input_tokens),
            "output_tokens": float(max_output_tokens),
            "tokens": float(input_tokens + max_output_tokens),
        }
        scopes = call.scopes()
        takes = tuple(
            Take(limit.name, limit.dimension, amounts[limit.dimension])
            for limit in self._limits.values()
            if limit.scope in scopes
        )
        leases = tuple(
            name
            for name, pool in self._pools.items()
            if pool.limit.scope.kind != "workflow" and pool.limit.scope in scopes
        )
        paused = tuple(s for s in scopes if s.kind in ("provider", "model"))
        return Demand(takes, leases, paused)

    def plan_run(self, workflow: str) -> Demand:
        """The demand of starting one run: a lease of each workflow-scope
        concurrency limit, held until the run ends."""
        scope = Scope("workflow", workflow)
        leases = tuple(name for name, pool in self._pools.items() if pool.limit.scope == scope)
        return Demand((), leases, ())

    # -- admission ----------------------------------------------------------

    def try_admit(self, demand: Demand) -> Admission | Blocked:
        """Takes everything the demand needs, or nothing at all."""
        now = self._clock.monotonic()
        blockers: list[tuple[str, float | None]] = []
        for take in demand.takes:
            bucket = self._buckets.get(take.limit)
            if bucket is not None and not bucket.can_take(take.amount, now):
                blockers.append((take.limit, bucket.wait_time(take.amount, now)))
        for name in demand.leases:
            pool = self._pools.get(name)
            if pool is not None and pool.in_use >= pool.limit.max_concurrent:
                blockers.append((name, None))
        for scope in demand.scopes:
            until = self._pauses.get(scope)
            if until is not None and until > now:
                blockers.append((str(scope), until - now))
        if blockers:
            return _blocked(blockers)
        taken: list[tuple[Take, TokenBucket]] = []
        for take in demand.takes:
            bucket = self._buckets.get(take.limit)
            if bucket is not None:
                bucket.take(take.amount, now)
                taken.append((take, bucket))
        pools = [self._pools[name] for name in demand.leases if name in self._pools]
        for pool in pools:
            pool.in_use += 1
        return Admission(demand, taken, pools)

    async def admit(
        self,
        demand: Demand,
        deadline: float | None,
        on_wait: Callable[[str], None] | None = None,
    ) -> Admission:
        """Waits until the demand is admitted. Raises QuotaTimeout as soon as
        the wait would outlast `deadline` (monotonic seconds), or at once if
        the demand can never fit. `on_wait(reason)` is called once, when the
        wait begins. No fairness: a small demand may overtake a large one."""
        waiting = False
        while True:
            outcome = self.try_admit(demand)
            if isinstance(outcome, Admission):
                return outcome
            now = self._clock.monotonic()
            if outcome.retry_in is not None and (
                outcome.retry_in == math.inf
                or (deadline is not None and now + outcome.retry_in > deadline)
            ):
                raise QuotaTimeout(outcome.reason)
            if deadline is not None and now >= deadline:
                raise QuotaTimeout(outcome.reason)
            if not waiting:
                waiting = True
                if on_wait is not None:
                    on_wait(outcome.reason)
            if outcome.retry_in is not None:
                await self._clock.sleep(outcome.retry_in)
            elif not await self._wait_for_release(deadline):
                raise QuotaTimeout(outcome.reason)

    def settle(self, admission: Admission, actual_input: int, actual_output: int) -> None:
        """Replaces the token reservation by the tokens actually used: the
        unused part goes back, an overrun is debited. Once only."""
        if admission.settled:
            return
        admission.settled = True
        now = self._clock.monotonic()
        actual: dict[Dimension, float] = {
            "input_tokens": float(actual_input),
            "output_tokens": float(actual_output),
            "tokens": float(actual_input + actual_output),
        }
        for take, bucket in admission._taken:
            if take.dimension == "requests":
                continue
            unused = take.amount - actual[take.dimension]
            if unused > 0:
                bucket.refund(unused, now)
            elif unused < 0:
                bucket.debit(-unused, now)

    def release(self, admission: Admission) -> None:
        """Frees the admission's leases. Once only: a second call does nothing."""
        if admission.released:
            return
        admission.released = True
        for pool in admission._pools:
            pool.in_use -= 1
        if admission._pools:
            self._wake_lease_waiters()

    # -- provider feedback --------------------------------------------------

    def feedback_rate_limited(self, call: CallScopes, retry_after: float) -> None:
        """A 429: nothing goes to the call's provider and model before
        `retry_after` seconds, whether or not a rate limit is configured."""
        now = self._clock.monotonic()
        until = now + max(retry_after, 0.0)
        for scope in _provider_scopes(call):
            self._pauses[scope] = max(self._pauses.get(scope, until), until)
            for bucket in self._buckets_of(scope, ("requests",)):
                bucket.pause_until(until, now)

    def feedback_headers(
        self,
        call: CallScopes,
        remaining_requests: int | None = None,
        remaining_tokens: int | None = None,
    ) -> None:
        """A provider reported what it has left (x-ratelimit-remaining-*):
        lowers the matching provider and model buckets to it. Remaining tokens
        bound every token dimension, since input or output alone is no more."""
        now = self._clock.monotonic()
        for scope in _provider_scopes(call):
            if remaining_requests is not None:
                for bucket in self._buckets_of(scope, ("requests",)):
                    bucket.clamp(float(remaining_requests), now)
            if remaining_tokens is not None:
                for bucket in self._buckets_of(scope, _TOKEN_DIMENSIONS):
                    bucket.clamp(float(remaining_tokens), now)

    # -- listing ------------------------------------------------------------

    def snapshot(self) -> QuotaSnapshot:
        now = self._clock.monotonic()
        wall = self._clock.now()
        rates = []
        for name, limit in self._limits.items():
            bucket = self._buckets[name]
            until = bucket.paused_until
            paused = until is not None and until > now
            rates.append(
                RateView(
                    name=name,
                    scope=limit.scope,
                    dimension=limit.dimension,
                    per_minute=limit.per_minute,
                    burst=limit.capacity,
                    available=bucket.available(now),
                    paused_until=wall + (until - now) if until is not None and paused else None,
                )
            )
        leases = tuple(
            LeaseView(name, pool.limit.scope, pool.in_use, pool.limit.max_concurrent)
            for name, pool in self._pools.items()
        )
        self._pauses = {s: t for s, t in self._pauses.items() if t > now}
        pauses = tuple((scope, wall + (until - now)) for scope, until in self._pauses.items())
        return QuotaSnapshot(tuple(rates), leases, pauses)

    # -- internals ----------------------------------------------------------

    def _buckets_of(self, scope: Scope, dimensions: Iterable[str]) -> list[TokenBucket]:
        wanted = set(dimensions)
        return [
            self._buckets[name]
            for name, limit in self._limits.items()
            if limit.scope == scope and limit.dimension in wanted
        ]

    async def _wait_for_release(self, deadline: float | None) -> bool:
        """Waits for some lease to be released; False if the deadline came first."""
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lease_waiters.append(woken)
        timer: asyncio.Future[None] | None = None
        try:
            if deadline is None:
                await woken
                return True
            timer = asyncio.ensure_future(
                self._clock.sleep(max(deadline - self._clock.monotonic(), 0.0))
            )
            await asyncio.wait({woken, timer}, return_when=asyncio.FIRST_COMPLETED)
            return woken.done()
        finally:
            if timer is not None:
                timer.cancel()
            if not woken.done():
                woken.cancel()
            if woken in self._lease_waiters:
                self._lease_waiters.remove(woken)

    def _wake_lease_waiters(self) -> None:
        waiters, self._lease_waiters = self._lease_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


def _blocked(blockers: list[tuple[str, float | None]]) -> Blocked:
    # A demand that can never fit says so first: waiting for a lease would not help.
    for name, wait in blockers:
        if wait == math.inf:
            return Blocked(f"quota:{name}", math.inf)
    reason = f"quota:{blockers[0][0]}"
    waits = [wait for _, wait in blockers]
    if any(wait is None for wait in waits):
        return Blocked(reason, None)
    return Blocked(reason, max(wait for wait in waits if wait is not None))


def _provider_scopes(call: CallScopes) -> tuple[Scope, ...]:
    return tuple(s for s in call.scopes() if s.kind in ("provider", "model"))


def _same_meter(old: RateLimit, new: RateLimit) -> bool:
    return old.scope == new.scope and old.dimension == new.dimension


def _check_unique_names(
    limits: Sequence[RateLimit], concurrency: Sequence[ConcurrencyLimit]
) -> None:
    seen: set[str] = set()
    for name in [limit.name for limit in limits] + [lease.name for lease in concurrency]:
        if name in seen:
            raise ValueError(f"duplicate quota name {name!r}")
        seen.add(name)
