"""Which steps may start: pure scheduling decisions over step states.

A step becomes ready the moment its dependencies allow it (its trigger rule),
never level by level. Counters of ended and succeeded dependencies make each
decision O(1), so a join of n steps costs O(n) over the whole run rather than
O(n^2). Nothing here runs anything: the executor asks and acts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from podium.core.spec import TriggerRule
from podium.core.states import StepState

__all__ = ["Decision", "DependencyCounters", "decide"]


@dataclass(frozen=True, slots=True)
class Decision:
    """ "launch" the step, "skip" it (with the reason), or "wait" for more dependencies."""

    action: Literal["launch", "skip", "wait"]
    reason: str = ""


_LAUNCH = Decision("launch")
_WAIT = Decision("wait")


def decide(
    rule: TriggerRule,
    dependencies: Sequence[str],
    ended: int,
    succeeded: int,
    state_of: Callable[[str], StepState],
    cause: str = "",
) -> Decision:
    """What to do with a PENDING step whose dependencies have `ended` and
    `succeeded` so far; `cause` is the dependency that just ended, if any
    (it names the reason of a skip)."""
    total = len(dependencies)
    if rule == "ALL_SUCCEEDED":
        if ended > succeeded:
            culprit = cause if cause and state_of(cause) != StepState.SUCCEEDED else ""
            if not culprit:
                culprit = next(
                    d
                    for d in dependencies
                    if state_of(d).is_final and state_of(d) != StepState.SUCCEEDED
                )
            return Decision("skip", f"dependency {culprit!r} {state_of(culprit).name.lower()}")
        return _LAUNCH if succeeded == total else _WAIT
    if ended < total:
        return _WAIT
    if rule == "ANY_SUCCEEDED" and total and not succeeded:
        return Decision("skip", "no dependency succeeded")
    return _LAUNCH


class DependencyCounters:
    """How many dependencies of each step have ended, and succeeded."""

    __slots__ = ("_dependents", "ended", "succeeded")

    def __init__(
        self,
        dependencies: Mapping[str, Sequence[str]],
        dependents: Mapping[str, Sequence[str]],
        states: Mapping[str, StepState],
    ) -> None:
        self._dependents = dependents
        self.ended: dict[str, int] = {}
        self.succeeded: dict[str, int] = {}
        for step_id, deps in dependencies.items():
            dep_states = [states[d] for d in deps]
            self.ended[step_id] = sum(1 for state in dep_states if state.is_final)
            self.succeeded[step_id] = dep_states.count(StepState.SUCCEEDED)

    def dependents(self, step_id: str) -> Sequence[str]:
        return self._dependents[step_id]

    def count_end(self, dependent: str, succeeded: bool) -> None:
        """Counts the end of one of `dependent`'s dependencies. Count one
        dependent, then decide about it, then the next: a decision may end
        steps itself (a skip), and a dependent must never see an end counted
        before the decision that caused it was made, or it could start twice."""
        self.ended[dependent] += 1
        if succeeded:
            self.succeeded[dependent] += 1
