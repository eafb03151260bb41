"""What the steps of one run share, handed down by its executor."""

from __future__ import annotations

from dataclasses import dataclass, field

from podium.engine.approvals import Approvals
from podium.engine.callbacks import CallbackBox
from podium.engine.child_budget import ChildHolds
from podium.engine.run_journal import RunJournal
from podium.engine.services import RunServices, StopSignal
from podium.engine.signals import SignalBox
from podium.engine.slots import RunSlots


@dataclass(frozen=True, slots=True)
class RunEnvironment:
    services: RunServices
    journal: RunJournal
    approvals: Approvals
    slots: RunSlots
    stop: StopSignal
    signals: SignalBox
    callbacks: CallbackBox
    # The ceilings of the run's running child runs, held in its budget.
    child_holds: ChildHolds = field(default_factory=ChildHolds)
