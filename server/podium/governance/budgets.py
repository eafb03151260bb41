"""Budgets: money ceilings per scope and period, held by reservations.

A call reserves its worst-case cost in every budget it falls in before it
runs, and settles the actual cost after. Settled spend plus open reservations
never exceed a limit, because a reservation is all or nothing and checks
against both. All methods but `wait_for_room` are synchronous: on one event
loop they are atomic.

A call that fits a limit on settled spend but not with other calls' open
reservations is told so (BudgetBusy) and may wait: most of that room comes
back when those calls settle. Waiters are served by their run's priority with
aging (podium.core.priority), in arrival order within a priority: a newcomer
never overtakes a call of its priority already waiting on the same budget. Only a call that
can never fit (settled spend plus its own worst case past the limit) is
refused (BudgetExceeded), so waiting cannot deadlock: every reservation it
waits for belongs to a call already past admission, which settles.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from podium.core.clock import Clock
from podium.core.priority import Place, place
from podium.governance.scopes import CallScopes

__all__ = [
    "BUDGET_SCOPE_KINDS",
    "PERIODS",
    "Budget",
    "BudgetBusy",
    "BudgetError",
    "BudgetExceeded",
    "BudgetLedger",
    "BudgetScopeKind",
    "BudgetView",
    "BudgetWarning",
    "Period",
    "Reservation",
    "run_budget_name",
]

BudgetScopeKind = Literal["run", "workflow", "agent", "provider", "tenant", "server"]
Period = Literal["none", "day", "month"]
BUDGET_SCOPE_KINDS: frozenset[str] = frozenset(get_args(BudgetScopeKind))
PERIODS: frozenset[str] = frozenset(get_args(Period))
ZERO = Decimal(0)

# (budget name, period key): "" for no period, "2026-11-21" by day, "2026-11" by month.
Key = tuple[str, str]
log = logging.getLogger("podium.governance.budgets")


class BudgetError(ValueError):
    """A budget setting that cannot be used; `field` names it, as in
    "budgets[2].limit"."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Budget:
    name: str
    scope_kind: BudgetScopeKind
    scope_value: str
    limit: Decimal
    period: Period = "none"
    timezone: str = "UTC"
    warn_fraction: float = 0.8

    def __post_init__(self) -> None:
        _check_budget(self, "budget")

    def period_key(self, now: float) -> str:
        """The period `now` (wall-clock seconds) falls in, in the budget's zone."""
        if self.period == "none":
            return ""
        local = datetime.fromtimestamp(now, ZoneInfo(self.timezone))
        return local.strftime("%Y-%m-%d" if self.period == "day" else "%Y-%m")

    def applies_to(self, call: CallScopes) -> bool:
        if self.scope_kind == "server":
            return True
        value = {
            "provider": call.provider,
            "agent": call.agent,
            "workflow": call.workflow,
            "tenant": call.tenant,
        }
        return value.get(self.scope_kind) == self.scope_value


def run_budget_name(run_id: str) -> str:
    """A run's budget is not configured but passed per call (StartRun's
    max_cost or the workflow's); it is kept under this name."""
    return f"run:{run_id}"


class BudgetExceeded(Exception):
    """Reserving `amount` would take `budget_name` over its limit; nothing
    was reserved anywhere."""

    def __init__(
        self, budget_name: str, limit: Decimal, spent: Decimal, reserved: Decimal, amount: Decimal
    ) -> None:
        super().__init__(
            f"budget {budget_name!r} exceeded: limit {limit}, spent {spent}, "
            f"reserved {reserved}, asked {amount}"
        )
        self.budget_name = budget_name
        self.limit = limit
        self.spent = spent
        self.reserved = reserved
        self.amount = amount


class BudgetBusy(Exception):
    """Reserving `amount` in `budget_name` fits its limit on settled spend, but
    not with the open reservations of calls still running (or calls already
    waiting come first): nothing was reserved, and the call may wait for room
    (`BudgetLedger.wait_for_room`)."""

    def __init__(
        self,
        budget_name: str,
        key: Key,
        limit: Decimal,
        spent: Decimal,
        reserved: Decimal,
        amount: Decimal,
    ) -> None:
        super().__init__(
            f"budget {budget_name!r} is held by calls in flight: limit {limit}, spent {spent}, "
            f"reserved {reserved}, asked {amount}"
        )
        self.budget_name = budget_name
        self.key = key
        self.amount = amount


class WaitTicket:
    """A call's place in the queues of the budgets it waits on (`BudgetLedger.ticket`)."""

    __slots__ = ("keys", "place")

    def __init__(self, place: Place) -> None:
        self.place = place
        self.keys: list[Key] = []


@dataclass(frozen=True, slots=True)
class BudgetWarning:
    """Settled spend crossed `warn_fraction` of the limit (once per period)."""

    budget_name: str
    period_key: str
    limit: Decimal
    spent: Decimal
    warn_fraction: float


@dataclass(eq=False)
class Reservation:
    amount: Decimal
    run_id: str
    # Spend lands in the periods current at reserve time, even if settled later.
    keys: tuple[Key, ...] = field(repr=False)
    closed: bool = False
    # The stored row's id, once governance made the reservation durable.
    id: str = ""


@dataclass(frozen=True, slots=True)
class BudgetView:
    name: str
    scope_kind: BudgetScopeKind
    scope_value: str
    limit: Decimal
    period: Period
    period_key: str
    spent: Decimal
    reserved: Decimal
    warn_fraction: float


class BudgetLedger:
    def __init__(
        self,
        budgets: Sequence[Budget],
        clock: Clock,
        on_settle: Callable[[str, str, Decimal], None] | None = None,
    ) -> None:
        self._clock = clock
        self._on_settle = on_settle
        self._budgets: dict[str, Budget] = {}
        self._settled: dict[Key, Decimal] = {}
        self._reserved: dict[Key, Decimal] = {}
        self._warned: set[Key] = set()
        # Per-run budgets by run id; dropped by close_run.
        self._runs: dict[str, Budget] = {}
        self._ids = itertools.count(1)
        # Calls waiting for room, in arrival order, per budget and period.
        self._queues: dict[Key, list[WaitTicket]] = {}
        # Set (and replaced) whenever room may have appeared: a reservation closed, a waiter
        # left its queue, limits changed.
        self._room = asyncio.Event()
        self.update(budgets)

    # -- configuration ------------------------------------------------------

    def update(self, budgets: Sequence[Budget]) -> None:
        """Replaces the configured budgets. A limit may be lowered below what
        its current period has already spent and reserved: it is logged, and
        the budget admits nothing new until spending fits under it again (in a
        later period). A budget whose scope or period changes counts from zero
        in its current period: what was spent before the change was counted
        under the old definition, and an older figure stored under the same
        period key (an earlier configuration with that period) is dropped."""
        now = self._clock.now()
        seen: set[str] = set()
        for index, budget in enumerate(budgets):
            where = f"budgets[{index}]"
            _check_budget(budget, where)
            if budget.scope_kind == "run":
                raise BudgetError(
                    f"{where}.scope_kind", "run budgets are passed per call (run_limit)"
                )
            if budget.name.startswith("run:"):
                raise BudgetError(f"{where}.name", "names starting with 'run:' are for runs")
            if budget.name in seen:
                raise BudgetError(f"{where}.name", f"duplicate budget name {budget.name!r}")
            seen.add(budget.name)
        for budget in budgets:
            key = (budget.name, budget.period_key(now))
            old = self._budgets.get(budget.name)
            if old is not None and (old.scope_kind, old.scope_value, old.period) != (
                budget.scope_kind,
                budget.scope_value,
                budget.period,
            ):
                # Another definition: its spend starts now (reservations of calls in
                # flight keep their own keys and settle there).
                self._settled.pop(key, None)
                self._warned.discard(key)
                log.info("budget %s redefined: counting from zero in period %r", *key)
            used = self._settled.get(key, ZERO) + self._reserved.get(key, ZERO)
            if budget.limit < used:
                log.warning(
                    "budget %s lowered to %s, below the %s spent and reserved in period %r: "
                    "it admits no new call until spending fits",
                    budget.name,
                    budget.limit,
                    used,
                    key[1],
                )
        self._budgets = {budget.name: budget for budget in budgets}
        self._signal_room()

    def load(self, spent: Mapping[Key, Decimal]) -> None:
        """Starts from stored spend. A budget already past its warning
        threshold does not warn again for that period."""
        for key, amount in spent.items():
            self._settled[key] = amount
            budget = self._budgets.get(key[0])
            if budget is not None and _past_warning(budget, amount):
                self._warned.add(key)
        # Spend set lower (a child run's ceiling handed back to its parent,
        # engine/child_steps.py) is room: whoever waits for some tries again.
        self._signal_room()

    def restore(self, reservation: Reservation) -> None:
        """Holds a stored reservation again (at start, one left open by a
        crash): it counts against its budgets until it is settled."""
        for key in reservation.keys:
            self._reserved[key] = self._reserved.get(key, ZERO) + reservation.amount

    # -- reservations -------------------------------------------------------

    def reserve(
        self,
        call: CallScopes,
        run_id: str,
        run_limit: Decimal | None,
        amount: Decimal,
        ticket: WaitTicket | None = None,
    ) -> Reservation:
        """Reserves `amount` in every budget the call falls in, having reserved
        nothing if it raises: BudgetExceeded for the first budget it can never
        fit (settled spend plus `amount` past the limit), else BudgetBusy for
        the first it cannot fit now (open reservations, or waiters with a
        better place than `ticket`, the call's; None: behind every waiter)."""
        if amount < 0:
            raise ValueError(f"a reservation cannot be negative, got {amount}")
        applicable = [b for b in self._budgets.values() if b.applies_to(call)]
        run_budget = None if run_limit is None else self._run_budget(run_id, run_limit)
        if run_budget is not None:
            applicable.append(run_budget)
        now = self._clock.now()
        keys: list[Key] = []
        busy: BudgetBusy | None = None
        for budget in applicable:
            key = (budget.name, budget.period_key(now))
            spent = self._settled.get(key, ZERO)
            reserved = self._reserved.get(key, ZERO)
            if spent + amount > budget.limit:
                raise BudgetExceeded(budget.name, budget.limit, spent, reserved, amount)
            if busy is None and (
                spent + reserved + amount > budget.limit or self._others_first(key, ticket)
            ):
                busy = BudgetBusy(budget.name, key, budget.limit, spent, reserved, amount)
            keys.append(key)
        if busy is not None:
            raise busy
        # Only now, so that a refused call leaves no trace, not even its run.
        if run_budget is not None:
            self._runs[run_id] = run_budget
        for key in keys:
            self._reserved[key] = self._reserved.get(key, ZERO) + amount
        return Reservation(amount, run_id, tuple(keys))

    # -- waiting for room ---------------------------------------------------

    def ticket(self, priority: int = 0) -> WaitTicket:
        """The place of a call of `priority` arriving now, should it wait."""
        return WaitTicket(place(priority, self._clock.monotonic()))

    def enqueue(self, ticket: WaitTicket, key: Key) -> None:
        """Puts a waiting call in line for a budget (once per budget), at its place."""
        if key not in ticket.keys:
            ticket.keys.append(key)
            queue = self._queues.setdefault(key, [])
            bisect.insort(queue, ticket, key=lambda queued: queued.place)

    def dequeue(self, ticket: WaitTicket) -> None:
        """Takes a call out of every line it is in (it reserved, gave up or was
        cancelled); the next in line may go."""
        for key in ticket.keys:
            queue = self._queues.get(key)
            if queue is not None and ticket in queue:
                queue.remove(ticket)
                if not queue:
                    del self._queues[key]
        ticket.keys.clear()
        self._signal_room()

    async def wait_for_room(self) -> None:
        """Returns once room may have appeared (try reserving again)."""
        await self._room.wait()

    def waiting(self, name: str, period_key: str | None = None) -> int:
        """How many calls wait for room in a budget."""
        return len(self._queues.get(self._key(name, period_key), ()))

    def settle(self, reservation: Reservation, actual: Decimal) -> list[BudgetWarning]:
        """Replaces the reservation by what was actually spent. An actual above
        the reservation is recorded as is: it was spent, and later calls then
        find less room. Once only: a second call does nothing."""
        if reservation.closed:
            return []
        self._close(reservation)
        warnings = []
        for key in reservation.keys:
            total = self._settled.get(key, ZERO) + actual
            self._settled[key] = total
            if self._on_settle is not None and actual:
                self._on_settle(key[0], key[1], actual)
            budget = self._budget(key[0])
            if budget is not None and key not in self._warned and _past_warning(budget, total):
                self._warned.add(key)
                warnings.append(
                    BudgetWarning(key[0], key[1], budget.limit, total, budget.warn_fraction)
                )
        return warnings

    def release(self, reservation: Reservation) -> None:
        """Drops the reservation without spend (the call never ran). Once only."""
        if not reservation.closed:
            self._close(reservation)

    def close_run(self, run_id: str) -> None:
        """Forgets a finished run's own budget (its spend is in the run record)."""
        budget = self._runs.pop(run_id, None)
        if budget is not None:
            self._settled.pop((budget.name, ""), None)
            self._reserved.pop((budget.name, ""), None)
            self._warned.discard((budget.name, ""))

    # -- reading ------------------------------------------------------------

    def limit(self, name: str) -> Decimal | None:
        """A configured budget's limit (None: no such budget, or a run's)."""
        budget = self._budgets.get(name)
        return None if budget is None else budget.limit

    def spent(self, name: str, period_key: str | None = None) -> Decimal:
        """Settled spend of a budget in a period (default: the current one)."""
        return self._settled.get(self._key(name, period_key), ZERO)

    def used_fraction(self, name: str, run_id: str = "") -> float | None:
        """How much of a budget's limit its current period has spent and reserved (None: no
        such budget); "run" names the calling run's own max_cost."""
        budget = self._runs.get(run_id) if name == "run" else self._budget(name)
        if budget is None:
            return None
        key = (budget.name, budget.period_key(self._clock.now()))
        used = self._settled.get(key, ZERO) + self._reserved.get(key, ZERO)
        if budget.limit <= 0:
            return 1.0
        return float(used / budget.limit)

    def reserved(self, name: str, period_key: str | None = None) -> Decimal:
        return self._reserved.get(self._key(name, period_key), ZERO)

    def snapshot(self) -> list[BudgetView]:
        """Configured budgets then run budgets, each in its current period."""
        now = self._clock.now()
        views = []
        for budget in [*self._budgets.values(), *self._runs.values()]:
            key = (budget.name, budget.period_key(now))
            views.append(
                BudgetView(
                    name=budget.name,
                    scope_kind=budget.scope_kind,
                    scope_value=budget.scope_value,
                    limit=budget.limit,
                    period=budget.period,
                    period_key=key[1],
                    spent=self._settled.get(key, ZERO),
                    reserved=self._reserved.get(key, ZERO),
                    warn_fraction=budget.warn_fraction,
                )
            )
        return views

    # -- internals ----------------------------------------------------------

    def _run_budget(self, run_id: str, limit: Decimal) -> Budget:
        # The limit may differ per call (a retried run with a new max_cost):
        # the latest one given is the one enforced.
        budget = self._runs.get(run_id)
        if budget is None or budget.limit != limit:
            budget = Budget(run_budget_name(run_id), "run", run_id, limit)
        return budget

    def _budget(self, name: str) -> Budget | None:
        budget = self._budgets.get(name)
        if budget is None and name.startswith("run:"):
            budget = self._runs.get(name.removeprefix("run:"))
        return budget

    def _key(self, name: str, period_key: str | None) -> Key:
        if period_key is not None:
            return (name, period_key)
        budget = self._budget(name)
        return (name, budget.period_key(self._clock.now()) if budget is not None else "")

    def _close(self, reservation: Reservation) -> None:
        reservation.closed = True
        for key in reservation.keys:
            left = self._reserved.get(key, ZERO) - reservation.amount
            if left > 0:
                self._reserved[key] = left
            else:
                self._reserved.pop(key, None)
        self._signal_room()

    def _others_first(self, key: Key, ticket: WaitTicket | None) -> bool:
        """Whether calls with a better place are in line for this budget (the lines are
        sorted: their head has the best place)."""
        queue = self._queues.get(key)
        if not queue or queue[0] is ticket:
            return False
        return ticket is None or queue[0].place < ticket.place

    def _signal_room(self) -> None:
        # Every waiter wakes and tries again, in the order it began to wait (asyncio resumes
        # an event's waiters first come, first served); the queues keep newcomers behind.
        self._room.set()
        self._room = asyncio.Event()


def _past_warning(budget: Budget, spent: Decimal) -> bool:
    # Nothing spent is nothing to warn about, even against a zero limit.
    return spent > 0 and spent >= budget.limit * Decimal(str(budget.warn_fraction))


def _check_budget(budget: Budget, where: str) -> None:
    if not budget.name:
        raise BudgetError(f"{where}.name", "a budget needs a name")
    if budget.scope_kind not in BUDGET_SCOPE_KINDS:
        raise BudgetError(f"{where}.scope_kind", f"must be one of {sorted(BUDGET_SCOPE_KINDS)}")
    if (budget.scope_kind == "server") != (budget.scope_value == ""):
        raise BudgetError(f"{where}.scope_value", "empty for the server scope and only for it")
    if not budget.limit.is_finite() or budget.limit < 0:
        raise BudgetError(f"{where}.limit", f"must be a finite amount >= 0, got {budget.limit}")
    if budget.period not in PERIODS:
        raise BudgetError(f"{where}.period", f"must be one of {sorted(PERIODS)}")
    if budget.scope_kind == "run" and budget.period != "none":
        raise BudgetError(f"{where}.period", "a run budget has no period")
    try:
        ZoneInfo(budget.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file
        raise BudgetError(f"{where}.timezone", f"unknown time zone {budget.timezone!r}") from None
    if not 0 < budget.warn_fraction <= 1:
        raise BudgetError(f"{where}.warn_fraction", "must be in (0, 1]")
