"""The step kinds that wait for the outside world: `wait_for_signal` (its
output is the signal's payload) and `callback` (its output is the payload of
CompleteCallback). Each waits until its own timeout or the step's deadline,
whichever comes first; the due time is kept with the step across restarts."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from podium.core.clock import Clock, DeadlineExceeded, run_until
from podium.core.failures import TIMEOUT, Failure
from podium.core.jsonvalues import from_json_numbers
from podium.core.model import StepRecord
from podium.core.spec import StepSpec
from podium.core.states import StepState
from podium.engine.environment import RunEnvironment
from podium.engine.run_journal import RunJournal
from podium.engine.step_values import StepFailed, truthy
from podium.engine.validation import StepPlan


class StepRunner(Protocol):
    """What these kinds need of the step runner (podium.engine.step_runner),
    which calls them: a protocol, so that neither module imports the other's."""

    @property
    def step(self) -> StepRecord: ...
    @property
    def spec(self) -> StepSpec: ...
    @property
    def plan(self) -> StepPlan: ...
    @property
    def env(self) -> RunEnvironment: ...
    @property
    def journal(self) -> RunJournal: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def deadline(self) -> float | None: ...


def _due(runner: StepRunner, timeout: float | None) -> float | None:
    """A resumed wait keeps its due time; a new one starts counting now."""
    if runner.step.state == StepState.WAITING:
        return runner.step.due_time
    due = None if timeout is None else runner.clock.now() + timeout
    if runner.deadline is not None:
        due = runner.deadline if due is None else min(due, runner.deadline)
    return due


async def _until(runner: StepRunner, future: asyncio.Future[Any], due: float | None) -> Any:
    if due is None:
        return await future
    return await run_until(_await(future), due, runner.clock)


async def wait_for_signal(runner: StepRunner, scope: dict[str, Any]) -> Any:
    spec = runner.spec.wait_for_signal
    assert spec is not None
    step, signals = runner.step, runner.env.signals
    due = _due(runner, spec.timeout)
    condition = runner.plan.signal_filter

    def accepts(payload: Any) -> bool:
        if condition is None:
            return True
        return truthy(condition.evaluate({**scope, "payload": from_json_numbers(payload)}))

    future = signals.wait(step.step_id, spec.name, accepts)
    if not future.done() and step.state != StepState.WAITING:
        runner.journal.step_waiting(step, due, f"waiting for signal {spec.name!r}")
    try:
        signal = await _until(runner, future, due)
    except DeadlineExceeded:
        message = f"no signal {spec.name!r} before the timeout"
        raise StepFailed(Failure(TIMEOUT, message, retryable=False)) from None
    finally:
        signals.stop_waiting(step.step_id)
    return signal.payload


async def callback(runner: StepRunner, scope: dict[str, Any]) -> Any:
    spec = runner.spec.callback
    assert spec is not None
    callbacks = runner.env.callbacks
    due = _due(runner, spec.timeout)
    token = callbacks.issue(runner.step, due).token
    try:
        return await _until(runner, callbacks.wait(token), due)
    except DeadlineExceeded:
        message = "no CompleteCallback before the timeout"
        raise StepFailed(Failure(TIMEOUT, message, retryable=False)) from None
    finally:
        callbacks.done(token, stopping=runner.env.stop.stopping)


async def _await(future: asyncio.Future[Any]) -> Any:
    return await future
