"""Re-running a finished run: which steps run again, and the records of the
steps that do not (their output reused).

A re-run is a new run of the original's workflow version and input. The
steps that run again are the roots (the named `from_steps`, or else every
step that did not succeed) and everything downstream of them; every other
step succeeded in the original and is reused: its record carries the
original's output and times, no attempt and no cost, so nothing is charged
twice. Nothing here records anything: the engine does.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from podium.core.errors import FieldViolation, InvalidArgument
from podium.core.model import StepRecord
from podium.core.states import StepState

__all__ = ["check_from_steps", "reused_step", "steps_to_run_again"]


def check_from_steps(from_steps: Sequence[str], known: Collection[str]) -> None:
    """InvalidArgument naming each unknown step (field from_steps[i])."""
    violations = [
        FieldViolation(f"from_steps[{i}]", f"the run has no step {step_id!r}")
        for i, step_id in enumerate(from_steps)
        if step_id not in known
    ]
    if violations:
        raise InvalidArgument("unknown step in from_steps", violations)


def steps_to_run_again(
    steps: Mapping[str, StepRecord],
    dependents: Mapping[str, Sequence[str]],
    from_steps: Sequence[str] = (),
) -> set[str]:
    """The roots and everything downstream of them; a step that did not
    succeed runs again whatever the roots (there is no output to reuse)."""
    if from_steps:
        roots = set(from_steps)
    else:
        roots = {s for s, step in steps.items() if step.state != StepState.SUCCEEDED}
    again: set[str] = set()
    pending = list(roots)
    while pending:
        step_id = pending.pop()
        if step_id in again:
            continue
        again.add(step_id)
        pending.extend(dependents.get(step_id, ()))
    again.update(s for s, step in steps.items() if step.state != StepState.SUCCEEDED)
    return again


def reused_step(original: StepRecord, original_run_id: str) -> StepRecord:
    """A SUCCEEDED step of a re-run, carrying the original's output (no attempt, no cost)."""
    return StepRecord(
        step_id=original.step_id,
        agent=original.agent,
        position=original.position,
        state=StepState.SUCCEEDED,
        input=original.input,
        output=original.output,
        reason=f"reused from runs/{original_run_id}",
        start_time=original.start_time,
        end_time=original.end_time,
        items_total=original.items_total,
        items_succeeded=original.items_succeeded,
        items_failed=original.items_failed,
        iterations=original.iterations,
    )
