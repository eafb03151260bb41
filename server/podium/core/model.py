"""The engine's records: usage, failures, runs, steps, attempts and events.

Records are plain mutable dataclasses owned by the engine; the store snapshots
them when asked to persist, so later mutation never races a commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from podium.core.failures import Failure
from podium.core.states import AttemptState, EventType, RunState, StepState

# The tenant of everything made by a server without authentication, and of
# everything stored before tenants were recorded.
DEFAULT_TENANT = "default"

ZERO = Decimal(0)


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    calls: int = 0

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_input_tokens += other.cached_input_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.calls += other.calls

    def copy(self) -> Usage:
        return Usage(
            self.input_tokens,
            self.output_tokens,
            self.cached_input_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            self.calls,
        )

    @property
    def is_empty(self) -> bool:
        return self.calls == 0 and self.input_tokens == 0 and self.output_tokens == 0

    def to_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "calls": self.calls,
        }

    @classmethod
    def from_dict(cls, data: dict[str, int] | None) -> Usage:
        return cls(**data) if data else cls()


@dataclass(slots=True)
class AttemptRecord:
    number: int
    state: AttemptState
    start_time: float
    # Fan-out item index or loop iteration; -1 for a plain step.
    item: int = -1
    end_time: float | None = None
    failure: Failure | None = None
    usage: Usage = field(default_factory=Usage)
    cost: Decimal = ZERO


@dataclass(slots=True)
class StepRecord:
    step_id: str
    agent: str
    position: int
    state: StepState = StepState.PENDING
    input: Any = None
    output: Any = None
    failure: Failure | None = None
    reason: str = ""
    attempts: list[AttemptRecord] = field(default_factory=list)
    start_time: float | None = None
    end_time: float | None = None
    usage: Usage = field(default_factory=Usage)
    cost: Decimal = ZERO
    # When the current wait ends: a retry's due time, a timer, an approval's
    # deadline. Persisted so that a restart keeps it.
    due_time: float | None = None
    items_total: int = 0
    items_succeeded: int = 0
    items_failed: int = 0
    iterations: int = 0
    # While a callback step waits: its token (kept in the callbacks table, not
    # with the step).
    callback_token: str = ""


@dataclass(slots=True)
class ItemRecord:
    """A finished fan-out item or loop iteration (kept so a restart skips it)."""

    index: int
    succeeded: bool
    output: Any = None
    failure: Failure | None = None


@dataclass(slots=True)
class RunRecord:
    run_id: str
    workflow_id: str
    workflow_version: int
    state: RunState
    input: dict[str, Any]
    create_time: float
    request_id: str = ""
    request_hash: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    max_concurrency: int = 0
    output: dict[str, Any] | None = None
    failure: Failure | None = None
    start_time: float | None = None
    end_time: float | None = None
    last_sequence: int = 0
    usage: Usage = field(default_factory=Usage)
    cost: Decimal = ZERO
    priority: int = 0
    # Hard ceiling of the run's LLM spend.
    max_cost: Decimal | None = None
    # W3C traceparent of the caller that started the run ("" if none), and of
    # the run's own span once it started: a resumed run's span links to it.
    trace_parent: str = ""
    trace_context: str = ""
    # The tenant of the principal that started the run: it sees the run, and
    # its calls are governed and charged as that tenant's.
    tenant: str = DEFAULT_TENANT
    # The run this one re-runs (RerunRun), else "".
    rerun_of: str = ""
    # A child run: the run and step that started it ("" for StartRun's), and
    # how deep it nests (0 for StartRun's).
    parent_run_id: str = ""
    parent_step_id: str = ""
    depth: int = 0
    # The input's stored JSON text once it is known (encoded at StartRun, or
    # read from the store): a run's input never changes, and a large one
    # took tens of milliseconds of the event loop to encode at every save.
    input_json: str | None = field(default=None, repr=False, compare=False)


@dataclass(slots=True)
class RunView:
    """A run with its steps, as read back from the store or the engine."""

    run: RunRecord
    steps: list[StepRecord]
    # True when the records are the engine's own, still changing as the run
    # goes on; False for a copy read from the store, which nobody else holds
    # (so it may be read off the event loop).
    live: bool = False


@dataclass(frozen=True, slots=True)
class Event:
    """One state change of a run or of one of its steps (contract: RunEvent)."""

    run_id: str
    sequence: int
    time: float
    type: EventType
    workflow_id: str
    run_state: RunState
    step_id: str = ""
    step_state: StepState | None = None
    attempt: int = 0
    message: str = ""
    progress: float = 0.0
    failure: Failure | None = None
    output: Any = None
    usage: Usage | None = None
    cost: Decimal | None = None
    provider: str = ""
    model: str = ""
    item: int = -1
    retry_delay: float | None = None
    due_time: float | None = None
    # 1 approve, 2 reject (contract: ApprovalDecision), for APPROVAL_RESOLVED.
    decision: int = 0
    breaker: str = ""
    # The tenant of the event's run: live subscribers see their tenant's events only.
    # Not stored with the event (the log is read per run, whose tenant is checked).
    tenant: str = DEFAULT_TENANT
    budget: str = ""
    price_version: str = ""
    tool: str = ""
    # Who resolved an approval (the principal's subject), for APPROVAL_RESOLVED.
    actor: str = ""
    # A callback step's token, for CALLBACK_ISSUED.
    callback_token: str = ""

    @property
    def is_final(self) -> bool:
        """True for the last event of a run."""
        return self.type in _FINAL_EVENT_TYPES


_FINAL_EVENT_TYPES = frozenset(
    {
        EventType.RUN_SUCCEEDED,
        EventType.RUN_FAILED,
        EventType.RUN_CANCELLED,
        EventType.RUN_PARTIALLY_SUCCEEDED,
    }
)


@dataclass(slots=True)
class RerunBatchRecord:
    """A RerunRuns call made with a request id: the originals its filter chose
    (kept so that a retry re-runs the same runs, whatever the filter matches
    by then); each new run carries the request id `{request_id}/{original}`."""

    tenant: str
    request_id: str
    request_hash: str
    originals: list[str]
    time: float


@dataclass(slots=True)
class SignalRecord:
    """A signal sent to a run: kept in order until a step consumes it."""

    run_id: str
    # 1, 2, ... in order of arrival within the run.
    position: int
    name: str
    payload: Any
    time: float
    request_id: str = ""
    # The wait_for_signal step that consumed it; "" while the run keeps it.
    consumed_by: str = ""


@dataclass(slots=True)
class CallbackRecord:
    """A callback step's single-use token and what became of it."""

    token: str
    run_id: str
    step_id: str
    tenant: str
    issue_time: float
    # "" while waiting; "COMPLETED" or "EXPIRED" once the token is spent.
    outcome: str = ""
    payload: Any = None


@dataclass(slots=True)
class NotificationRecord:
    """A run's completion notification: armed when the run starts, due when
    it ends, then delivered or given up (its attempts are events of the run)."""

    run_id: str
    url: str
    secret: str
    # "ARMED" (the run goes on), "PENDING" (to deliver), "DELIVERED", "FAILED".
    state: str = "ARMED"
    attempts: int = 0
    # When the next delivery attempt is due (PENDING only).
    due_time: float | None = None


@dataclass(frozen=True, slots=True)
class OutputDelta:
    """A piece of a step's answer as its provider streams it (contract:
    OutputDelta). Live only: never stored, never replayed, no sequence of the
    run's event log; the step's final output is an event like any other."""

    run_id: str
    step_id: str
    item: int
    attempt: int
    # 1 for an attempt's first delta, then 2, 3, ...: in order, none skipped
    # unless the subscriber fell behind (see OutputDelta.index in the contract).
    index: int
    text: str
