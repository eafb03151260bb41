"""Quotas: rate limits (token buckets) and concurrency limits (leases), admitted
all or nothing.

Every method but `admit` is synchronous: the engine runs on one asyncio loop,
so a check followed by a take with no await in between cannot interleave with
another caller's.
"""

from __future__ import annotations

import asyncio
import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from podium.core.clock import Clock
from podium.core.priority import Place, place
from podium.governance.buckets import TokenBucket
from podium.governance.scopes import CallScopes, Scope
from podium.governance.windows import WINDOWS, window_name

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
    """At most `limit` units per `window` seconds on average, and `burst` at
    once (default: one window's worth). A token bucket refilling at
    limit/window a second admits at most limit + burst over any stretch of
    one window (limit x t / window + burst over any t), so several limits on
    one scope (500 requests a minute and 2 M tokens a day) each hold over
    their own window."""

    name: str
    scope: Scope
    dimension: Dimension
    limit: float
    burst: float | None = None
    window: float = WINDOWS["minute"]

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a rate limit needs a name")
        if self.dimension not in DIMENSIONS:
            raise ValueError(f"{self.name}: dimension must be one of {sorted(DIMENSIONS)}")
        if not 0 < self.limit < math.inf:
            raise ValueError(f"{self.name}: limit must be > 0, got {self.limit}")
        if self.burst is not None and not 0 < self.burst < math.inf:
            raise ValueError(f"{self.name}: burst must be > 0, got {self.burst}")
        if not 0 < self.window < math.inf:
            raise ValueError(f"{self.name}: window must be > 0 seconds, got {self.window}")

    @property
    def capacity(self) -> float:
        return self.limit if self.burst is None else self.burst

    @property
    def rate_per_second(self) -> float:
        return self.limit / self.window


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
    """The demand could not be admitted before the deadline (or ever);
    `detail` gives the figures when it can never fit."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class _Waiter:
    """A demand's place in the lines of the limits that blocked it (podium.core.priority:
    by its run's priority, with aging, then arrival)."""

    __slots__ = ("names", "place")

    def __init__(self, place: Place) -> None:
        self.place = place
        self.names: list[str] = []


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
    limit: float
    window: float
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
        # Demands waiting for each limit, in arrival order: a newcomer queues behind them.
        self._queues: dict[str, list[_Waiter]] = {}
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

    def rate_limits(self) -> tuple[RateLimit, ...]:
        return tuple(self._limits.values())

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

    def try_admit(self, demand: Demand, waiter: _Waiter | None = None) -> Admission | Blocked:
        """Takes everything the demand needs, or nothing at all. A limit that
        others wait for ahead of `waiter` (the caller's place; None: behind
        everyone) blocks too: waiters are admitted by priority with aging, in
        arrival order within a priority."""
        now = self._clock.monotonic()
        blockers: list[tuple[str, float | None]] = []
        for take in demand.takes:
            bucket = self._buckets.get(take.limit)
            if bucket is None:
                continue
            if not bucket.can_take(take.amount, now):
                blockers.append((take.limit, bucket.wait_time(take.amount, now)))
            elif self._others_first(take.limit, waiter):
                blockers.append((take.limit, None))
        for name in demand.leases:
            pool = self._pools.get(name)
            if pool is not None and (
                pool.in_use >= pool.limit.max_concurrent or self._others_first(name, waiter)
            ):
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
        priority: int = 0,
    ) -> Admission:
        """Waits until the demand is admitted. Raises QuotaTimeout as soon as
        the wait would outlast `deadline` (monotonic seconds), or at once,
        with the figures, if the demand can never fit. `on_wait(reason)` is
        called once, when the wait begins. Fair: waiters for the same limits
        are admitted by `priority` with aging (podium.core.priority), and a
        demand that waits is admitted before any of its priority that came
        after it (a small demand never overtakes a large one that waits)."""
        waiter = _Waiter(place(priority, self._clock.monotonic()))
        waiting = False
        try:
            while True:
                outcome = self.try_admit(demand, waiter)
                if isinstance(outcome, Admission):
                    return outcome
                now = self._clock.monotonic()
                if outcome.retry_in == math.inf:
                    raise QuotaTimeout(outcome.reason, self._too_large(demand))
                if outcome.retry_in is not None and (
                    deadline is not None and now + outcome.retry_in > deadline
                ):
                    raise QuotaTimeout(outcome.reason)
                if deadline is not None and now >= deadline:
                    raise QuotaTimeout(outcome.reason)
                if not waiting:
                    waiting = True
                    if on_wait is not None:
                        on_wait(outcome.reason)
                self._enqueue(waiter, demand)
                if not await self._wait_for_change(outcome.retry_in, deadline):
                    raise QuotaTimeout(outcome.reason)
        finally:
            if waiter.names:
                self._dequeue(waiter)

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
        lowers the matching provider and model buckets to it. Providers report
        their per-minute limits (OpenAI's and Anthropic's headers), so only
        one-minute windows are clamped: a day's bucket is not "what is left
        this minute". Remaining tokens bound every token dimension, since
        input or output alone is no more."""
        now = self._clock.monotonic()
        minute = WINDOWS["minute"]
        for scope in _provider_scopes(call):
            if remaining_requests is not None:
                for bucket in self._buckets_of(scope, ("requests",), minute):
                    bucket.clamp(float(remaining_requests), now)
            if remaining_tokens is not None:
                for bucket in self._buckets_of(scope, _TOKEN_DIMENSIONS, minute):
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
                    limit=limit.limit,
                    window=limit.window,
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

    def _buckets_of(
        self, scope: Scope, dimensions: Iterable[str], window: float | None = None
    ) -> list[TokenBucket]:
        wanted = set(dimensions)
        return [
            self._buckets[name]
            for name, limit in self._limits.items()
            if limit.scope == scope
            and limit.dimension in wanted
            and (window is None or limit.window == window)
        ]

    async def _wait_for_change(self, retry_in: float | None, deadline: float | None) -> bool:
        """Waits until tokens may suffice (`retry_in` seconds), a lease is released or a
        waiter ahead leaves its line; False if the deadline came first."""
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lease_waiters.append(woken)
        timers: list[asyncio.Future[None]] = []
        try:
            # Due times are fixed now, not when the timer tasks first run: the clock may move
            # in between (a ManualClock advanced by a test, or a busy loop).
            if retry_in is not None:
                due = self._clock.monotonic() + retry_in
                timers.append(asyncio.ensure_future(self._sleep_until(due)))
            expiry: asyncio.Future[None] | None = None
            if deadline is not None:
                expiry = asyncio.ensure_future(self._sleep_until(deadline))
                timers.append(expiry)
            await asyncio.wait({woken, *timers}, return_when=asyncio.FIRST_COMPLETED)
            return not (expiry is not None and expiry.done() and not woken.done())
        finally:
            for timer in timers:
                timer.cancel()
            if not woken.done():
                woken.cancel()
            if woken in self._lease_waiters:
                self._lease_waiters.remove(woken)

    async def _sleep_until(self, due: float) -> None:
        await self._clock.sleep(max(due - self._clock.monotonic(), 0.0))

    def _others_first(self, name: str, waiter: _Waiter | None) -> bool:
        """Whether a demand with a better place waits for this limit (the
        lines are sorted: their head has the best place)."""
        queue = self._queues.get(name)
        if not queue or queue[0] is waiter:
            return False
        return waiter is None or queue[0].place < waiter.place

    def _enqueue(self, waiter: _Waiter, demand: Demand) -> None:
        """In line for every limit of the demand, at its place, so nothing with
        a worse place overtakes it on any of them."""
        for name in [take.limit for take in demand.takes] + list(demand.leases):
            if name not in waiter.names:
                waiter.names.append(name)
                queue = self._queues.setdefault(name, [])
                bisect.insort(queue, waiter, key=lambda queued: queued.place)

    def _dequeue(self, waiter: _Waiter) -> None:
        for name in waiter.names:
            queue = self._queues.get(name)
            if queue is not None and waiter in queue:
                queue.remove(waiter)
                if not queue:
                    del self._queues[name]
        waiter.names.clear()
        # The next in line may go now.
        self._wake_lease_waiters()

    def _too_large(self, demand: Demand) -> str:
        """The figures of a demand larger than a bucket can ever hold."""
        for take in demand.takes:
            limit = self._limits.get(take.limit)
            if limit is not None and take.amount > limit.capacity:
                return (
                    f"asks {take.amount:g} {take.dimension} at once, more than its capacity "
                    f"of {limit.capacity:g} (burst; {limit.limit:g} per "
                    f"{window_name(limit.window)})"
                )
        return ""

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
    return old.scope == new.scope and old.dimension == new.dimension and old.window == new.window


def _check_unique_names(
    limits: Sequence[RateLimit], concurrency: Sequence[ConcurrencyLimit]
) -> None:
    seen: set[str] = set()
    for name in [limit.name for limit in limits] + [lease.name for lease in concurrency]:
        if name in seen:
            raise ValueError(f"duplicate quota name {name!r}")
        seen.add(name)
