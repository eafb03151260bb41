"""A run's callback steps: each issues a single-use, unguessable token and
waits for CompleteCallback with it.

The token is the capability: whoever holds it may complete the step once. It
is shown to the run's readers (the CALLBACK_ISSUED event, the waiting step in
GetRun) so that they can hand it to the outside system, and it is spent (its
record says COMPLETED or EXPIRED) as soon as the step stops waiting for it, so
a leaked old token completes nothing.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from podium.core.model import CallbackRecord, StepRecord
from podium.core.states import EventType
from podium.engine.ports import RunStore
from podium.engine.run_journal import RunJournal

COMPLETED = "COMPLETED"
EXPIRED = "EXPIRED"
# 32 random bytes, URL-safe base64: 43 characters after the prefix. The prefix
# keeps a token from starting with "-" (1 in 64 would), which a command line
# (`podium runs complete-callback TOKEN`) would read as an option.
TOKEN_BYTES = 32
TOKEN_PREFIX = "cb_"


class CallbackBox:
    __slots__ = ("_journal", "_records", "_store", "_waiting")

    def __init__(self, journal: RunJournal, store: RunStore, records: list[CallbackRecord]) -> None:
        self._journal = journal
        self._store = store
        self._records = {r.token: r for r in records}
        self._waiting: dict[str, asyncio.Future[Any]] = {}

    def issue(self, step: StepRecord, due: float | None) -> CallbackRecord:
        """The step's live token: the one issued before a restart, else a new one."""
        journal = self._journal
        for record in self._records.values():
            if record.step_id == step.step_id and record.outcome != EXPIRED:
                step.callback_token = record.token
                return record
        record = CallbackRecord(
            token=TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES),
            run_id=journal.run.run_id,
            step_id=step.step_id,
            tenant=journal.run.tenant,
            issue_time=journal.now(),
        )
        self._records[record.token] = record
        step.callback_token = record.token
        self._store.put_callback(record)
        journal.step_waiting(step, due, "waiting for a callback")
        journal.emit(
            EventType.CALLBACK_ISSUED,
            step=step,
            callback_token=record.token,
            due_time=due,
            message="waiting for CompleteCallback",
        )
        return record

    def wait(self, token: str) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        record = self._records[token]
        if record.outcome == COMPLETED:  # completed just before a restart
            future.set_result(record.payload)
        else:
            self._waiting[token] = future
        return future

    def complete(self, token: str, payload: Any, actor: str) -> CallbackRecord | None:
        """Spends a live token: the step gets `payload`. None when the token is
        not one this run waits for (unknown, spent, or its step not waiting)."""
        record = self._records.get(token)
        if record is None or record.outcome:
            return None
        future = self._waiting.pop(token, None)
        if future is None:
            # Resumed after a restart, the step waits for its token again only
            # once it runs: the completion is kept until then (`wait` hands it
            # over at once), rather than refused while the run is being resumed.
            step = self._journal.steps.get(record.step_id)
            if step is None or step.state.is_final:
                return None
        elif future.done():
            return None
        record.outcome = COMPLETED
        record.payload = payload
        self._store.put_callback(record)
        step = self._journal.steps[record.step_id]
        self._journal.emit(EventType.CALLBACK_COMPLETED, step=step, output=payload, actor=actor)
        if future is not None:
            future.set_result(payload)
        return record

    def done(self, token: str, *, stopping: bool) -> None:
        """The step stopped waiting: its token is spent unless the server is
        stopping (then the step waits for it again after the restart)."""
        self._waiting.pop(token, None)
        record = self._records.get(token)
        if record is None:
            return
        self._journal.steps[record.step_id].callback_token = ""
        if stopping or record.outcome:
            return
        record.outcome = EXPIRED
        self._store.put_callback(record)
