"""The server's governance: the policy file plus runtime changes, turned into
live quotas, budgets, breakers and prices, and kept in SQLite.

Runtime changes (ControlService) win over the policy file by name and survive
restarts; deleting a file-defined entry at runtime stores a tombstone.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import ValidationError

from podium.core.clock import Clock
from podium.core.errors import FieldViolation
from podium.core.model import DEFAULT_TENANT
from podium.core.spec import WorkflowSpec
from podium.governance.alerts import Alerter, check_secret
from podium.governance.breakers import BreakerBoard, BreakerSettings, BreakerState, CircuitBreaker
from podium.governance.budgets import (
    Budget,
    BudgetError,
    BudgetExceeded,
    BudgetLedger,
    BudgetView,
    Reservation,
    run_budget_name,
)
from podium.governance.fit import oversized_calls
from podium.governance.policy import (
    AlertKind,
    AlertsPolicy,
    BreakerPolicy,
    BudgetPolicy,
    Policy,
    PolicyError,
    QuotaPolicy,
    field_of,
    parse_scope,
)
from podium.governance.policy_sync import PolicySync, with_overrides
from podium.governance.ports import GovernanceStore, OpenReservation, OverrideKind, SpendRow
from podium.governance.prices import Price, PriceTable
from podium.governance.quotas import (
    ConcurrencyLimit,
    Demand,
    LeaseView,
    QuotaBook,
    QuotaTimeout,
    RateLimit,
    RateView,
    Take,
)
from podium.governance.scopes import CallScopes, Scope
from podium.governance.spend import ReportPeriod, SpendReport, month_start, spend_report

log = logging.getLogger("podium.governance")


@dataclass(frozen=True, slots=True)
class Transition:
    """A circuit breaker changed state: its name, new state and the cause."""

    breaker: str
    state: str
    cause: str


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    policy: QuotaPolicy
    rate: RateView | None
    lease: LeaseView | None


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    policy: BudgetPolicy
    view: BudgetView | None


# Shared quotas: how often a call waiting for a lease or a refill asks again.
SHARED_QUOTA_POLL = 0.05
SHARED_QUOTA_MAX_WAIT = 1.0
# Shared breakers: how long a probe claim holds at least (a server that dies
# while probing frees it then; a probe call longer than this lets a second one in).
PROBE_HOLD_SECONDS = 30.0


@dataclass(slots=True)
class SharedAdmission:
    """What a call took from the shared quotas (cluster mode)."""

    lease_id: str
    takes: tuple[tuple[Take, RateLimit], ...]
    leases: bool
    done: bool = False


_collector: contextvars.ContextVar[list[Transition] | None] = contextvars.ContextVar(
    "podium_breaker_transitions", default=None
)


class Governance:
    def __init__(
        self,
        policy: Policy,
        clock: Clock,
        store: GovernanceStore | None = None,
        *,
        shared: bool = False,
    ) -> None:
        """`shared` (cluster mode: several servers on one database): each budget
        reservation is checked against the database's spend and open reservations in
        the transaction that stores it, and the reservations other servers hold are
        theirs (a stopped server's are adopted with its runs, `adopt_left_open`)."""
        if shared and store is None:
            raise ValueError("shared governance needs a store")
        self.shared = shared
        self.policy = policy
        self.clock = clock
        self._store = store
        self.prices = PriceTable()
        for price in policy.prices:
            self.prices.override(price.provider, price.model, _price(price))
        self._quotas: dict[str, QuotaPolicy] = {q.name: q for q in policy.quotas}
        self._budgets: dict[str, BudgetPolicy] = {b.name: b for b in policy.budgets}
        self.quotas = QuotaBook([], [], clock)
        self.ledger = BudgetLedger([], clock, on_settle=self._settled)
        self.breakers = BreakerBoard(
            _breaker(policy.breakers.defaults),
            {name: _breaker(b) for name, b in policy.breakers.overrides.items()},
            clock,
            on_transition=self._on_transition,
        )
        self.alerts = Alerter(clock, policy.alerts)
        # The secrets the server holds (names), against which a runtime alerts URL's
        # secret is checked; None: not known (no server), not checked.
        self.secret_names: frozenset[str] | None = None
        self.breakers.on_moved = self._breaker_moved
        self._pending_spend: list[tuple[str, str, Decimal]] = []
        # Reservations a crash left open, by run, until the run is resumed
        # (or recovery ends) and charges them at their worst case.
        self._left_open: dict[str, list[tuple[OpenReservation, Reservation]]] = {}
        self._policy_sync = PolicySync()
        self._saving = 0  # overrides being stored by this server (a sync waits for them)
        # Bumped by each local change: a sync whose reads began before a local
        # change that has since been stored read stale overrides, and must not
        # apply them (it would undo the change until the next sync).
        self._changes = 0
        self._apply()

    async def load(self) -> None:
        """Applies stored runtime changes and stored spend (at start-up)."""
        if self._store is None:
            return
        for name, body in (await self._store.overrides("quotas")).items():
            if body is None:
                self._quotas.pop(name, None)
            else:
                self._quotas[name] = QuotaPolicy.model_validate(body)
        for name, body in (await self._store.overrides("budgets")).items():
            if body is None:
                self._budgets.pop(name, None)
            else:
                self._budgets[name] = BudgetPolicy.model_validate(body)
        self.ledger.load(await self._store.budget_spend())
        self._apply()
        alerts = _alerts_with(self.policy.alerts, await self._store.overrides("alerts"))
        if self.secret_names is not None:
            check_secret(alerts, self.secret_names)  # a stored URL's secret, too
        self.alerts.configure(alerts)
        # Calls in flight at a crash: their bill is unknown, so they hold
        # their worst case in every budget until charged (fail closed). In a
        # cluster, open rows may be calls other servers have in flight now.
        if not self.shared:
            for row in await self._store.open_reservations():
                self._adopt(OpenReservation.from_row(row))
        if await self._store.note_start() and not self.shared:
            # What the buckets handed out before the restart is unknown. (In a
            # cluster the shared buckets in the database decide, across restarts.)
            self.quotas.drain()

    def _adopt(self, stored: OpenReservation) -> None:
        reservation = Reservation(stored.amount, stored.run_id, stored.keys, id=stored.id)
        self.ledger.restore(reservation)
        self._left_open.setdefault(stored.run_id, []).append((stored, reservation))

    async def adopt_left_open(self, run_ids: list[str]) -> None:
        """Cluster mode: runs taken over from a stopped server bring the calls it had
        in flight (their reservations), charged when each run resumes."""
        if self._store is None or not self.shared:
            return
        wanted = set(run_ids)
        known = {stored.id for held in self._left_open.values() for stored, _ in held}
        for row in await self._store.open_reservations():
            stored = OpenReservation.from_row(row)
            if stored.run_id in wanted and stored.id not in known:
                self._adopt(stored)

    # -- shared quotas (cluster mode) ------------------------------------------------

    async def admit_shared(
        self, demand: Demand, on_wait: Callable[[str], None] | None = None
    ) -> SharedAdmission | None:
        """Cluster mode: takes the demand's rate and concurrency quotas in the
        database too, waiting until it fits (after the local admission: what one
        server admits never exceeds what all of them may). None outside cluster
        mode or when no quota applies. QuotaTimeout if it can never fit."""
        if not self.shared or self._store is None:
            return None
        takes = []
        for take in demand.takes:
            limit = self.quotas.rate_limit(take.limit)
            if limit is not None:
                takes.append((take, limit))
        leases = []
        for name in demand.leases:
            concurrency = self.quotas.concurrency_limit(name)
            if concurrency is not None:
                leases.append((name, concurrency.max_concurrent))
        if not takes and not leases:
            return None
        rows = [(t.limit, t.amount, lim.rate_per_second, lim.capacity) for t, lim in takes]
        lease_id = uuid.uuid4().hex
        waiting = False
        while True:
            wait = await self._store.take_shared(rows, leases, lease_id, time.time())
            if wait is None:
                return SharedAdmission(lease_id, tuple(takes), bool(leases))
            reason = f"quota:{(takes[0][0].limit if takes else leases[0][0])}"
            if wait == math.inf:
                raise QuotaTimeout(reason)
            if not waiting and on_wait is not None:
                on_wait(reason)
            waiting = True
            await asyncio.sleep(min(max(wait, SHARED_QUOTA_POLL), SHARED_QUOTA_MAX_WAIT))

    def settle_shared(
        self, admission: SharedAdmission | None, actual_input: int, actual_output: int
    ) -> None:
        """Gives back the unused part of the shared token takes (or debits an
        overrun), and the leases: rides the next commit. Once only."""
        if admission is None or admission.done or self._store is None:
            return
        admission.done = True
        actual = {
            "input_tokens": float(actual_input),
            "output_tokens": float(actual_output),
            "tokens": float(actual_input + actual_output),
        }
        for take, limit in admission.takes:
            if take.dimension != "requests":
                unused = take.amount - actual[take.dimension]
                if unused:
                    self._store.adjust_shared(take.limit, unused, limit.capacity)
        if admission.leases:
            self._store.release_shared(admission.lease_id)

    # -- shared run admission (cluster mode: engine/shared_admission.py) -------------

    def run_quota_leases(self, workflow_id: str) -> list[tuple[str, int]]:
        """The workflow-scope concurrency quotas a run of `workflow_id` takes a
        lease of (name, max_concurrent); empty outside cluster mode."""
        if not self.shared:
            return []
        quotas = self.quotas
        leases = []
        for name in quotas.plan_run(workflow_id).leases:
            limit = quotas.concurrency_limit(name)
            if limit is not None:
                leases.append((name, limit.max_concurrent))
        return leases

    async def take_run_leases(self, leases: list[tuple[str, int]], lease_id: str) -> bool:
        """Takes every lease (name, max) under `lease_id` in one transaction, or none:
        False when one is full (its live holders across servers are at its max).
        Store errors propagate (the caller retries)."""
        assert self._store is not None and self.shared
        wait = await self._store.take_shared([], leases, lease_id, time.time())
        return wait is None

    def release_run_leases(self, lease_id: str) -> None:
        """Drops what `take_run_leases` took under `lease_id` (nothing if it took
        nothing); rides the next commit."""
        assert self._store is not None and self.shared
        self._store.release_shared(lease_id)

    # -- shared breakers (cluster mode) ----------------------------------------------

    def _breaker_moved(self, breaker: CircuitBreaker) -> None:
        """A breaker changed state here: it alerts (opened, closed again), and in
        cluster mode the others adopt it at their next sync (adopting alerts nothing:
        the server that moved it did). HALF_OPEN is not shared: every server derives
        it from the same cooldown."""
        self._breaker_alert(breaker)
        if not self.shared or self._store is None:
            return
        state = breaker.state_recorded
        if state is BreakerState.HALF_OPEN:
            return
        changed = max(time.time(), breaker.shared_changed + 1e-6)
        breaker.shared_changed = changed
        self._store.publish_breaker(breaker.tenant, breaker.name, state.value, changed)

    async def sync_breakers(self) -> None:
        """Cluster mode: adopts the breaker changes other servers published since
        the last sync (an open with its cooldown's end, a close after a probe)."""
        if not self.shared or self._store is None:
            return
        now = time.time()
        for tenant, name, state, changed in await self._store.breaker_states():
            breaker = self.breakers.breaker(name, tenant)
            if changed > breaker.shared_changed:
                breaker.shared_changed = changed
                breaker.adopt(BreakerState(state), now - changed)

    async def sync_cluster(self) -> None:
        """Cluster mode, each poll: other servers' breaker changes, and (throttled)
        their runtime quota and budget changes."""
        await self.sync_breakers()
        if self._policy_sync.due():
            await self.sync_policies()

    async def sync_policies(self) -> bool:
        """Applies the runtime overrides stored by any server when they differ from
        what this server applies (podium.governance.policy_sync); whether it did."""
        if self._store is None or self._saving:
            return False
        changes = self._changes
        quotas, budgets = with_overrides(
            self.policy.quotas,
            self.policy.budgets,
            await self._store.overrides("quotas"),
            await self._store.overrides("budgets"),
        )
        alerts = _alerts_with(self.policy.alerts, await self._store.overrides("alerts"))
        if not self._saving and changes == self._changes and alerts != self.alerts.policy:
            self.alerts.configure(alerts)
            log.info("cluster: adopted the alerts settings changed on another server")
        if self._saving or changes != self._changes:
            return False  # a local change is being (or was just) stored: read again next time
        if quotas == self._quotas and budgets == self._budgets:
            return False
        previous = self._quotas, self._budgets
        self._quotas, self._budgets = quotas, budgets
        try:
            self._apply()
        except PolicyError as error:
            # Another server's budget below this server's view of the spend: keep
            # the last good policy and say so (the next sync tries again).
            self._quotas, self._budgets = previous
            self._apply()
            log.warning("cluster: a stored quota or budget cannot apply here: %s", error)
            return False
        log.info("cluster: adopted quota and budget changes made on another server")
        return True

    async def claim_probes(self, probes: list[CircuitBreaker]) -> bool:
        """Cluster mode: whether this server may send the probe of each half-open
        breaker (no other server holds it): one probe decides for all."""
        if not self.shared or self._store is None:
            return True
        now = time.time()
        for breaker in probes:
            hold = max(breaker.settings.cooldown, PROBE_HOLD_SECONDS)
            if not await self._store.claim_probe(
                breaker.tenant, breaker.name, breaker.shared_changed, now, hold
            ):
                return False
        return True

    # -- breaker transitions ---------------------------------------------------------

    @contextlib.contextmanager
    def transitions(self) -> Iterator[list[Transition]]:
        """Collects the breaker transitions caused within the block (by this
        task: a context variable keeps concurrent calls apart)."""
        seen: list[Transition] = []
        token = _collector.set(seen)
        try:
            yield seen
        finally:
            _collector.reset(token)

    def _breaker_alert(self, breaker: CircuitBreaker) -> None:
        state = breaker.state_recorded
        if state is BreakerState.HALF_OPEN:
            return
        kind: AlertKind = "breaker_opened" if state is BreakerState.OPEN else "breaker_closed"
        name = (
            breaker.name if breaker.tenant == DEFAULT_TENANT else f"{breaker.tenant}/{breaker.name}"
        )
        verb = "opened" if state is BreakerState.OPEN else "closed again"
        self.alerts.raise_alert(
            kind,
            f"breaker:{name}",
            f"circuit breaker {name} {verb}: {breaker.cause}",
            {
                "breaker": breaker.name,
                "tenant": breaker.tenant,
                "state": state.value,
                "cause": breaker.cause,
            },
        )

    def _on_transition(self, name: str, old: str, new: str, cause: str) -> None:
        log.info("circuit breaker %s: %s -> %s (%s)", name, old, new, cause)
        seen = _collector.get()
        if seen is not None:
            seen.append(Transition(name, str(new), cause))

    # -- runtime changes ---------------------------------------------------------

    def oversized_calls(
        self, workflow_id: str, tenant: str, spec: WorkflowSpec
    ) -> list[FieldViolation]:
        """The steps of a definition whose every call is larger than a configured
        quota can ever admit (see governance.fit); checked at CreateWorkflow."""
        return oversized_calls(spec, workflow_id, tenant, self.quotas.rate_limits())

    def quota_policies(self) -> list[QuotaPolicy]:
        return list(self._quotas.values())

    def budget_policies(self) -> list[BudgetPolicy]:
        return list(self._budgets.values())

    def quota_statuses(self) -> list[QuotaStatus]:
        """Every quota with what is available now."""
        snapshot = self.quotas.snapshot()
        rates = {view.name: view for view in snapshot.rates}
        leases = {view.name: view for view in snapshot.leases}
        return [
            QuotaStatus(quota, rates.get(quota.name), leases.get(quota.name))
            for quota in self._quotas.values()
        ]

    def budget_status(self, budget: BudgetPolicy) -> BudgetStatus:
        """A budget with its current period's spend and open reservations."""
        views = {view.name: view for view in self.ledger.snapshot()}
        return BudgetStatus(budget, views.get(budget.name))

    def budget_statuses(self) -> list[BudgetStatus]:
        views = {view.name: view for view in self.ledger.snapshot()}
        return [BudgetStatus(b, views.get(b.name)) for b in self._budgets.values()]

    def budget_utilization(self) -> list[tuple[str, float]]:
        """Each budget's spent plus reserved over its limit, this period (for metrics)."""
        return [
            (view.name, float((view.spent + view.reserved) / view.limit) if view.limit else 0.0)
            for view in self.ledger.snapshot()
        ]

    def breaker_states(self) -> list[tuple[str, str]]:
        """Each breaker's name and state (for metrics); another tenant's than the
        default's is named `<tenant>/<name>`."""
        return [
            (
                view.name if view.tenant == DEFAULT_TENANT else f"{view.tenant}/{view.name}",
                str(view.state),
            )
            for view in self.breakers.list()
        ]

    async def put_quota(self, data: dict[str, Any]) -> QuotaPolicy:
        quota: QuotaPolicy = _validated(QuotaPolicy, data, "quota")
        self._quotas[quota.name] = quota
        self._apply()
        await self._save("quotas", quota.name, quota.model_dump(mode="json"))
        return quota

    async def delete_quota(self, name: str) -> bool:
        if self._quotas.pop(name, None) is None:
            return False
        self._apply()
        await self._save("quotas", name, None)
        return True

    async def put_budget(self, data: dict[str, Any]) -> BudgetPolicy:
        budget: BudgetPolicy = _validated(BudgetPolicy, data, "budget")
        previous = self._budgets.get(budget.name)
        self._budgets[budget.name] = budget
        try:
            self._apply()
        except PolicyError as error:
            if previous is None:
                del self._budgets[budget.name]
            else:
                self._budgets[budget.name] = previous
            raise PolicyError("budget.limit", error.reason) from None
        await self._save("budgets", budget.name, budget.model_dump(mode="json"))
        return budget

    async def delete_budget(self, name: str) -> bool:
        if self._budgets.pop(name, None) is None:
            return False
        self._apply()
        await self._save("budgets", name, None)
        return True

    def alerts_policy(self) -> AlertsPolicy | None:
        """The alerts settings in force (None: alerting is off)."""
        return self.alerts.policy

    async def put_alerts(self, data: dict[str, Any] | None) -> AlertsPolicy | None:
        """Replaces the alerts settings (None switches alerting off); stored, wins over
        the policy file. PolicyError names a bad field, or a secret the server lacks."""
        alerts = None if data is None else _validated(AlertsPolicy, data, "alerts")
        if self.secret_names is not None:
            check_secret(alerts, self.secret_names)
        self.alerts.configure(alerts)
        await self._save(
            "alerts", "alerts", None if alerts is None else alerts.model_dump(mode="json")
        )
        return alerts

    async def _save(self, kind: OverrideKind, name: str, body: dict[str, Any] | None) -> None:
        if self._store is not None:
            self._changes += 1
            self._saving += 1
            try:
                await self._store.save_override(kind, name, body)
            finally:
                self._saving -= 1

    def _apply(self) -> None:
        rates: list[RateLimit] = []
        leases: list[ConcurrencyLimit] = []
        for quota in self._quotas.values():
            kind, value = parse_scope(quota.scope)
            scope = Scope(kind, value)  # type: ignore[arg-type]
            if quota.dimension == "concurrency":
                leases.append(ConcurrencyLimit(quota.name, scope, int(quota.limit)))
            else:
                rates.append(
                    RateLimit(
                        quota.name,
                        scope,
                        quota.dimension,
                        quota.limit,
                        quota.burst or None,
                        quota.window,
                    )
                )
        self.quotas.update(rates, leases)
        budgets = []
        for policy in self._budgets.values():
            kind, value = parse_scope(policy.scope)
            budgets.append(
                Budget(
                    policy.name,
                    kind,  # type: ignore[arg-type]
                    value,
                    policy.limit,
                    policy.period,
                    policy.time_zone,
                    policy.warn_fraction,
                )
            )
        try:
            self.ledger.update(budgets)
        except BudgetError as error:
            index = int(error.field.split("[")[1].split("]")[0]) if "[" in error.field else -1
            name = budgets[index].name if 0 <= index < len(budgets) else ""
            raise PolicyError(
                f"budgets.{name}.limit" if name else error.field, error.reason
            ) from None

    # -- spend ----------------------------------------------------------------------

    async def spend(
        self,
        scope_kind: str = "",
        scope_value: str = "",
        since_day: str = "",
        *,
        tenant: str = DEFAULT_TENANT,
    ) -> list[SpendRow]:
        """A tenant's settled spend per scope and UTC day (empty without a store)."""
        if self._store is None:
            return []
        return await self._store.spend(tenant, scope_kind, scope_value, since_day)

    async def spend_report(
        self,
        scope_kind: str,
        scope_value: str,
        period: ReportPeriod,
        since: str = "",
        *,
        tenant: str = DEFAULT_TENANT,
    ) -> SpendReport:
        """A tenant's settled spend per scope and UTC day or month, from `since` (a day,
        or a month for a month report), with the total."""
        rows = await self.spend(scope_kind, scope_value, month_start(since, period), tenant=tenant)
        return spend_report(rows, period)

    def _settled(self, budget: str, period_key: str, amount: Decimal) -> None:
        # A run's own spend is its Run.cost, stored with each LLM_CALL event.
        if not budget.startswith("run:"):
            self._pending_spend.append((budget, period_key, amount))
            self._threshold_alerts(budget, period_key, amount)

    def _threshold_alerts(self, name: str, period_key: str, amount: Decimal) -> None:
        """Alerts for each threshold that `amount`, just settled, took the budget's
        period across (once per period: settled spend only grows within one)."""
        policy = self._budgets.get(name)
        if policy is None or policy.limit <= 0 or not self.alerts.enabled("budget_threshold"):
            return
        spent = self.ledger.spent(name, period_key)
        before = spent - amount
        for fraction in self.alerts.budget_thresholds(policy.warn_fraction):
            mark = policy.limit * Decimal(str(fraction))
            if before < mark <= spent:
                period = f" in period {period_key}" if period_key else ""
                self.alerts.raise_alert(
                    "budget_threshold",
                    f"budget:{name}",
                    f"budget {name} has spent {spent} of {policy.limit}{period}, "
                    f"past {fraction * 100:g}%",
                    {
                        "budget": name,
                        "period": period_key,
                        "limit": str(policy.limit),
                        "spent": str(spent),
                        "reserved": str(self.ledger.reserved(name, period_key)),
                        "threshold": fraction,
                    },
                    dedupe=f"{period_key}@{fraction}",
                )

    # -- durable reservations ------------------------------------------------------

    async def hold(
        self,
        reservation: Reservation,
        call: CallScopes,
        *,
        step_id: str = "",
        attempt: int = 0,
        item: int = -1,
    ) -> None:
        """Makes a reservation durable; the provider call may go out once this
        returns. If it raises, the caller releases the reservation."""
        if self._store is None:
            return
        reservation.id = uuid.uuid4().hex
        stored = OpenReservation(
            id=reservation.id,
            run_id=reservation.run_id,
            amount=reservation.amount,
            keys=reservation.keys,
            provider=call.provider,
            model=call.model,
            agent=call.agent,
            workflow=call.workflow,
            step_id=step_id,
            attempt=attempt,
            item=item,
            tenant=call.tenant,
        )
        if self.shared:
            await self._reserve_shared(reservation, stored)
            return
        self._store.open_reservation(*stored.row())
        await self._store.commit()

    async def _reserve_shared(self, reservation: Reservation, stored: OpenReservation) -> None:
        """The database decides: settled + reserved + this call within every
        configured budget, across servers (a run's own budget is its owner's)."""
        assert self._store is not None
        limits = []
        for name, period_key in reservation.keys:
            limit = self.ledger.limit(name)
            if limit is not None:
                limits.append((name, period_key, limit))
        refused = await self._store.reserve_within(*stored.row(), limits)
        if refused is not None:
            name, spent, reserved = refused
            limit = self.ledger.limit(name) or Decimal(0)
            raise BudgetExceeded(name, limit, spent, reserved, reservation.amount)

    def release(self, reservation: Reservation) -> None:
        """Drops a reservation without spend (the call never reached the provider)."""
        if reservation.closed:
            return
        self.ledger.release(reservation)
        if self._store is not None and reservation.id:
            self._store.close_reservation(reservation.id)

    def resume_run(self, run_id: str, spent: Decimal) -> list[OpenReservation]:
        """A run resumes after a restart: its ceiling starts from what it had
        spent (its stored cost); returns the reservations it left open, which
        the caller charges (`charge_left_open`) with the run events that say so."""
        self.ledger.load({(run_budget_name(run_id), ""): spent})
        return [stored for stored, _ in self._left_open.get(run_id, [])]

    def charge_left_open(self, stored: OpenReservation) -> str:
        """Charges a reservation a crash left open at its full amount (the
        worst case: the provider may have billed it); returns the price
        version to report. Submitted with the caller's writes: the row is
        deleted in the transaction that records the charge."""
        held = self._left_open.get(stored.run_id, [])
        for index, (candidate, reservation) in enumerate(held):
            if candidate.id == stored.id:
                del held[index]
                if not held:
                    del self._left_open[stored.run_id]
                self.ledger.settle(reservation, stored.amount)
                scopes = CallScopes(
                    stored.provider, stored.model, stored.agent, stored.workflow, stored.tenant
                )
                self.record_spend(scopes, stored.amount, reservation_id=stored.id)
                break
        return self.prices.lookup(stored.provider, stored.model)[1]

    def charge_all_left_open(self) -> None:
        """Charges what no resumed run charged (its run had ended, or failed to resume)."""
        for run_id in list(self._left_open):
            for stored, _ in list(self._left_open.get(run_id, [])):
                log.warning(
                    "run %s: a call in flight at the last stop is charged its worst case %s",
                    run_id,
                    stored.amount,
                )
                self.charge_left_open(stored)

    def record_spend(self, call: CallScopes, amount: Decimal, reservation_id: str = "") -> None:
        """Stores a settled call's spend: per budget period, and per scope and
        UTC day for GetSpend, and closes its stored reservation. Rides the
        writer's next batch, in the same transaction as the run event that
        records the call (submitted by the caller without an await between)."""
        pending, self._pending_spend = self._pending_spend, []
        if self._store is None:
            return
        if reservation_id:
            self._store.close_reservation(reservation_id)
        day = datetime.datetime.fromtimestamp(self.clock.now(), tz=datetime.UTC).date().isoformat()
        scopes = [("server", "")]
        for kind, value in (
            ("provider", call.provider),
            ("model", call.model_key),
            ("agent", call.agent),
            ("workflow", call.workflow),
            ("tenant", call.tenant),
        ):
            if value:
                scopes.append((kind, value))
        for budget, period_key, amount_settled in pending:
            self._store.add_budget_spend(budget, period_key, amount_settled)
        self._store.add_spend(call.tenant, scopes, day, amount)


M = TypeVar("M", QuotaPolicy, BudgetPolicy, AlertsPolicy)


def _alerts_with(
    alerts: AlertsPolicy | None, overrides: dict[str, dict[str, Any] | None]
) -> AlertsPolicy | None:
    """The policy file's alerts settings, or the runtime change (UpdateAlerts) if any."""
    if "alerts" not in overrides:
        return alerts
    body = overrides["alerts"]
    return None if body is None else AlertsPolicy.model_validate(body)


def _validated(model: type[M], data: dict[str, Any], prefix: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise field_of(error, prefix) from None


def _breaker(policy: BreakerPolicy) -> BreakerSettings:
    return BreakerSettings(
        failure_threshold=policy.failure_threshold,
        failure_rate=policy.failure_rate,
        window=policy.window,
        min_calls=policy.min_calls,
        cooldown=policy.cooldown,
    )


def _price(policy: Any) -> Price:
    return Price(
        input=policy.input,
        output=policy.output,
        cached_input=policy.cached_input,
        cache_write=policy.cache_write,
        reasoning=policy.reasoning,
    )
