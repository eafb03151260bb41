"""What the steps of one run share, handed down by its executor."""

from __future__ import annotations

from dataclasses import dataclass

from podium.engine.approvals import Approvals
from podium.engine.callbacks import CallbackBox
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
