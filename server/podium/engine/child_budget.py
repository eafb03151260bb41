"""A parent run's budget as its `workflow` steps see it (engine/child_steps.py).

A parent with a max_cost hands what is left of it to each child as the
child's ceiling, and holds that ceiling in its run budget (as spend, so that
neither its own calls nor another child can use it) until the child ends.
`ChildHolds` keeps those holds for one run, by child run id, so that setting
one aside twice (a step resumed after a restart finds its child running)
holds it once. After a restart, before any step looks for room, the ceilings
of the run's children still running are held again, all of them at once: a
step that waits for room must not see the room a running sibling child holds
as free just because that sibling's step has not been resumed yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Protocol

from podium.core.failures import BUDGET_EXCEEDED, Failure
from podium.core.model import RunRecord, StepRecord
from podium.engine.run_journal import RunJournal
from podium.engine.services import RunServices, StopSignal
from podium.engine.step_values import StepFailed
from podium.governance.budgets import run_budget_name


class RunEnvironment(Protocol):
    """What of a run's environment (podium.engine.environment, which holds a
    ChildHolds: hence a protocol, not an import) the holds use."""

    @property
    def services(self) -> RunServices: ...
    @property
    def journal(self) -> RunJournal: ...
    @property
    def stop(self) -> StopSignal: ...


__all__ = ["ChildHolds"]

ZERO = Decimal(0)
# The parent's children still running, read from the store.
Running = Callable[[], Awaitable[list[RunRecord]]]


class ChildHolds:
    def __init__(self) -> None:
        self._held: dict[str, Decimal] = {}
        self._reheld: asyncio.Future[None] | None = None

    async def room(self, env: RunEnvironment, step: StepRecord, running: Running) -> Decimal | None:
        """What is left of the parent's ceiling (the child's ceiling), held
        for the child `step` is about to start (give it back with `release`
        if the child does not start). While none is left now but some may come
        back (the parent's calls in flight settle below their worst case,
        another child ends below its ceiling), the step waits (`budget:run:ID`),
        as a call waits for its budget (governance/gate.py); once the parent's
        settled spend alone is at its ceiling, none ever will, and the step
        fails with podium.BudgetExceeded and the figures."""
        journal = env.journal
        parent = journal.run
        if parent.max_cost is None:
            return None
        await self.hold_running(env, running)
        ledger = env.services.governance.ledger
        name = run_budget_name(parent.run_id)
        waiting = ""
        try:
            while True:
                # The ledger's spend holds the running children's ceilings as well.
                spent = max(ledger.spent(name, ""), parent.cost)
                reserved = ledger.reserved(name, "")
                room = parent.max_cost - spent - reserved
                if room > 0:
                    return room
                if parent.cost >= parent.max_cost:
                    message = (
                        f"budget {name!r} exceeded: limit {parent.max_cost}, spent "
                        f"{parent.cost}, reserved {reserved}: no room left for a child run"
                    )
                    raise StepFailed(Failure(BUDGET_EXCEEDED, message, retryable=False))
                if not waiting:
                    waiting = f"budget:{name}"
                    journal.step_waiting(step, None, waiting)
                await ledger.wait_for_room()
        finally:
            if waiting and not env.stop.stopping:
                journal.step_resumed(step, waiting)

    async def hold_running(self, env: RunEnvironment, running: Running) -> None:
        """Holds the ceilings of the parent's running children, once per run
        executor (the first step to ask reads them; the others wait for it)."""
        if env.journal.run.max_cost is None:
            return
        if self._reheld is None:
            self._reheld = asyncio.get_running_loop().create_future()
            try:
                for child in await running():
                    self.hold(env, child.run_id, child.max_cost)
            except BaseException as error:
                self._reheld.set_exception(error)
                self._reheld.exception()  # retrieved: the waiters re-raise it
                self._reheld = None
                raise
            self._reheld.set_result(None)
        else:
            await asyncio.shield(self._reheld)

    def hold(self, env: RunEnvironment, child_run_id: str, amount: Decimal | None) -> None:
        """Holds a child's ceiling until `release` (once per child)."""
        parent = env.journal.run
        if parent.max_cost is None or amount is None or child_run_id in self._held:
            return
        self._held[child_run_id] = amount
        self._load(env, amount)

    def release(self, env: RunEnvironment, child_run_id: str, spent: Decimal = ZERO) -> None:
        """Gives a child's ceiling back; `spent`: what the child's cost adds to
        the parent's (call it before adding it to the parent's cost)."""
        if env.journal.run.max_cost is None:
            return
        self._load(env, spent - self._held.pop(child_run_id, ZERO))

    def _load(self, env: RunEnvironment, change: Decimal) -> None:
        parent = env.journal.run
        ledger = env.services.governance.ledger
        key = (run_budget_name(parent.run_id), "")
        ledger.load({key: max(ZERO, max(ledger.spent(key[0], ""), parent.cost) + change)})
