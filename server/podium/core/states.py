"""Lifecycle states of runs, steps and attempts, and the kinds of run events.

The names match the contract's enums (`RUN_STATE_<NAME>` and so on) so that
translation is by name, and the values match their numbers.
"""

from __future__ import annotations

from enum import IntEnum


class RunState(IntEnum):
    PENDING = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5
    PARTIALLY_SUCCEEDED = 6
    WAITING_APPROVAL = 7
    # pause: held by PauseRun until ResumeRun (not final).
    PAUSED = 70

    @property
    def is_final(self) -> bool:
        return self in _FINAL_RUN_STATES


_FINAL_RUN_STATES = frozenset(
    {RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.PARTIALLY_SUCCEEDED}
)


# The states of a run that is not over (recovery resumes these), in number order.
UNFINISHED_RUN_STATES = (
    RunState.PENDING,
    RunState.RUNNING,
    RunState.WAITING_APPROVAL,
    RunState.PAUSED,
)


class StepState(IntEnum):
    PENDING = 1
    READY = 2
    RUNNING = 3
    SUCCEEDED = 4
    FAILED = 5
    SKIPPED = 6
    CANCELLED = 7
    WAITING = 8

    @property
    def is_final(self) -> bool:
        return self in _FINAL_STEP_STATES


_FINAL_STEP_STATES = frozenset(
    {StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED, StepState.CANCELLED}
)


class AttemptState(IntEnum):
    RUNNING = 1
    SUCCEEDED = 2
    FAILED = 3
    INTERRUPTED = 4
    CANCELLED = 5


class EventType(IntEnum):
    RUN_CREATED = 1
    RUN_STARTED = 2
    RUN_SUCCEEDED = 3
    RUN_FAILED = 4
    RUN_CANCELLED = 5
    STEP_STARTED = 6
    STEP_PROGRESS = 7
    STEP_SUCCEEDED = 8
    STEP_FAILED = 9
    STEP_SKIPPED = 10
    STEP_CANCELLED = 11
    LLM_CALL = 12
    STEP_RETRYING = 13
    STEP_WAITING = 14
    APPROVAL_REQUESTED = 15
    APPROVAL_RESOLVED = 16
    COMPENSATION_STARTED = 17
    COMPENSATION_SUCCEEDED = 18
    COMPENSATION_FAILED = 19
    STEP_CACHE_HIT = 20
    RUN_PARTIALLY_SUCCEEDED = 21
    ITEM_STARTED = 22
    ITEM_SUCCEEDED = 23
    ITEM_FAILED = 24
    CIRCUIT_OPENED = 25
    CIRCUIT_HALF_OPEN = 26
    CIRCUIT_CLOSED = 27
    BUDGET_WARNING = 28
    TOOL_CALLED = 29
    TOOL_RESULT = 30
    SIGNAL_RECEIVED = 50
    CALLBACK_ISSUED = 51
    CALLBACK_COMPLETED = 52
    NOTIFICATION_DELIVERED = 53
    NOTIFICATION_FAILED = 54
    RUN_PAUSED = 70
    RUN_RESUMED = 71
