"""The seam through which telemetry watches runs: the journal and the step
context report what happened, after the engine decided it. An observer
records (spans, metrics, log lines); it never changes a run. Its methods
take core records only, so an implementation needs nothing of the engine.

Every call site tests `observer is not None` first: a server without an
observer pays one comparison per report.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from podium.core.failures import Failure
from podium.core.model import AttemptRecord, RunRecord, StepRecord, Usage


class RunObserver(Protocol):
    def run_started(self, run: RunRecord, *, resumed: bool) -> str:
        """A run starts (or resumes after a restart). Returns the run's own
        trace context (a W3C traceparent, or ""), which the journal stores
        with a new run so that a resumed run can link to it."""
        ...

    def run_finished(self, run: RunRecord) -> None:
        """The run reached its final state (run.state, run.failure)."""
        ...

    def attempt_started(
        self, run: RunRecord, step: StepRecord, attempt: AttemptRecord, queued: float
    ) -> None:
        """An attempt starts, after `queued` seconds waiting for a slot."""
        ...

    def attempt_traceparent(self, run: RunRecord, step: StepRecord, attempt: AttemptRecord) -> str:
        """The W3C traceparent of a running attempt's span ("" without one):
        a worker's span of the attempt becomes its child."""
        ...

    def attempt_ended(self, run: RunRecord, step: StepRecord, attempt: AttemptRecord) -> None:
        """An attempt ended (attempt.state, attempt.failure)."""
        ...

    def retrying(
        self,
        run: RunRecord,
        step: StepRecord,
        attempt: AttemptRecord,
        failure: Failure,
        delay: float,
    ) -> None: ...

    def step_ended(self, run: RunRecord, step: StepRecord) -> None:
        """A step reached its final state."""
        ...

    def waiting(
        self, run: RunRecord, step: StepRecord, attempt: AttemptRecord, reason: str
    ) -> None:
        """An attempt waits inside the gate: "quota:<name>" or "breaker:<name>"."""
        ...

    def resumed(
        self, run: RunRecord, step: StepRecord, attempt: AttemptRecord, reason: str
    ) -> None: ...

    def llm_call_started(
        self, run: RunRecord, step: StepRecord, attempt: AttemptRecord, provider: str, model: str
    ) -> None: ...

    def llm_call_charged(
        self,
        run: RunRecord,
        step: StepRecord,
        attempt: AttemptRecord,
        usage: Usage,
        cost: Decimal,
        provider: str,
        model: str,
        price_version: str,
    ) -> None:
        """The call in flight was charged (settled, or its reservation when
        no usage arrived)."""
        ...

    def llm_call_ended(
        self,
        run: RunRecord,
        step: StepRecord,
        attempt: AttemptRecord,
        finish_reason: str,
        error: BaseException | None,
    ) -> None: ...

    def tool_call_started(
        self, run: RunRecord, step: StepRecord, attempt: AttemptRecord, tool: str, call_id: str
    ) -> None: ...

    def tool_call_ended(
        self,
        run: RunRecord,
        step: StepRecord,
        attempt: AttemptRecord,
        call_id: str,
        failure: Failure | None,
    ) -> None: ...

    def breaker_changed(self, run: RunRecord, breaker: str, state: str, cause: str) -> None:
        """A circuit breaker moved to `state` (OPEN, HALF_OPEN, CLOSED) on this run's call."""
        ...
