"""Re-running a finished run: which steps run again, and the records of the
steps that do not (their output reused).

A re-run is a new run of the original's workflow version and input. The
steps that run again are the roots (the named `from_steps`, or else every
step that did not succeed) and everything downstream of them; every other
step succeeded in the original and is reused: its record carries the
original's output and times, no attempt and no cost, so nothing is charged
twice. Nothing here records anything: the engine does.

Compensation: a reused step's side effects belong to the original run, which
performed them, so the re-run never compensates it (if the re-run fails, only
the steps it ran itself are undone; undoing a reused step again would undo an
effect twice, or one the original already undid). And a step whose
compensation the original started (its effect was, or may have been, undone)
is not reused: its output may describe an effect that no longer stands, so it
runs again as a root, with everything downstream. Steps are at-least-once
anyway; reusing an output whose effect is gone is not allowed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from podium.core.errors import FieldViolation, InvalidArgument
from podium.core.model import StepRecord
from podium.core.states import StepState

__all__ = ["REUSED_PREFIX", "check_from_steps", "is_reused", "reused_step", "steps_to_run_again"]

# The reason of a reused step (README, "Re-running a run"): also how a resumed
# re-run tells its reused steps (never compensated) from those it ran.
REUSED_PREFIX = "reused from runs/"


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
    compensated: Collection[str] = (),
) -> set[str]:
    """The roots and everything downstream of them; a step that did not
    succeed runs again whatever the roots (there is no output to reuse).
    `compensated`: the steps whose compensation the original started, roots
    too whatever `from_steps` says (see the module's doc)."""
    if from_steps:
        roots = set(from_steps)
    else:
        roots = {s for s, step in steps.items() if step.state != StepState.SUCCEEDED}
    roots.update(s for s in compensated if s in steps)
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
        reason=f"{REUSED_PREFIX}{original_run_id}",
        start_time=original.start_time,
        end_time=original.end_time,
        items_total=original.items_total,
        items_succeeded=original.items_succeeded,
        items_failed=original.items_failed,
        iterations=original.iterations,
    )


def is_reused(step: StepRecord) -> bool:
    """Whether a re-run's step was reused (not run by this run): it never ran
    an attempt, and it carries the reused reason."""
    return (
        step.state == StepState.SUCCEEDED
        and not step.attempts
        and step.reason.startswith(REUSED_PREFIX)
    )
