"""A run's signals: kept in order of arrival until a wait_for_signal step
consumes one. Each signal is consumed by one step at most; a step consumes the
oldest kept signal of its name that its filter accepts, or waits for the next.

Consumption is written (the signal's `consumed_by`) before the step's success
is: a server that stops in between finds, on resuming, the signal the step
had consumed, and the step succeeds with it instead of taking another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from podium.core.model import SignalRecord
from podium.core.states import EventType
from podium.engine.ports import RunStore
from podium.engine.run_journal import RunJournal

Accepts = Callable[[Any], bool]


@dataclass(slots=True)
class _Waiter:
    name: str
    accepts: Accepts
    future: asyncio.Future[SignalRecord]


class SignalBox:
    __slots__ = ("_journal", "_signals", "_store", "_waiters")

    def __init__(self, journal: RunJournal, store: RunStore, signals: list[SignalRecord]) -> None:
        self._journal = journal
        self._store = store
        self._signals = sorted(signals, key=lambda s: s.position)
        # Steps waiting, in the order they began to (the first match wins).
        self._waiters: dict[str, _Waiter] = {}

    def find(self, request_id: str) -> SignalRecord | None:
        """The signal sent with this request id, if any."""
        return next((s for s in self._signals if s.request_id == request_id), None)

    def receive(self, name: str, payload: Any, request_id: str, actor: str) -> SignalRecord:
        """Records a new signal; a waiting step that accepts it consumes it at once."""
        journal = self._journal
        signal = SignalRecord(
            run_id=journal.run.run_id,
            position=len(self._signals) + 1,
            name=name,
            payload=payload,
            time=journal.now(),
            request_id=request_id,
        )
        self._signals.append(signal)
        taker = next(
            (
                step_id
                for step_id, waiter in self._waiters.items()
                if waiter.name == name and _accepts(waiter.accepts, payload)
            ),
            None,
        )
        if taker is not None:
            signal.consumed_by = taker
        self._store.put_signal(signal)
        journal.emit(
            EventType.SIGNAL_RECEIVED,
            step=journal.steps[taker] if taker else None,
            message=name,
            output=payload,
            actor=actor,
        )
        if taker is not None:
            self._waiters.pop(taker).future.set_result(signal)
        return signal

    def wait(self, step_id: str, name: str, accepts: Accepts) -> asyncio.Future[SignalRecord]:
        """The signal the step gets: the one it consumed before a restart, else
        the oldest kept one it accepts, else the next one it accepts."""
        future: asyncio.Future[SignalRecord] = asyncio.get_running_loop().create_future()
        mine = next((s for s in self._signals if s.consumed_by == step_id), None)
        if mine is None:
            mine = next(
                (
                    s
                    for s in self._signals
                    if not s.consumed_by and s.name == name and _accepts(accepts, s.payload)
                ),
                None,
            )
            if mine is not None:
                mine.consumed_by = step_id
                self._store.put_signal(mine)
        if mine is not None:
            future.set_result(mine)
        else:
            self._waiters[step_id] = _Waiter(name, accepts, future)
        return future

    def stop_waiting(self, step_id: str) -> None:
        self._waiters.pop(step_id, None)

    @property
    def kept(self) -> int:
        """Signals no step consumed (yet)."""
        return sum(1 for s in self._signals if not s.consumed_by)


def _accepts(accepts: Accepts, payload: Any) -> bool:
    try:
        return accepts(payload)
    # A filter is the workflow's code run on a sender's payload: whatever it
    # raises means "not this signal", never a broken run.
    except Exception:
        return False
