"""Circuit breakers: count and rate modes, the half-open probe, reset,
transition callbacks and the classification of errors."""

from __future__ import annotations

import asyncio

import pytest

from podium.core.clock import DeadlineExceeded, ManualClock
from podium.governance.breakers import (
    BreakerBoard,
    BreakerSettings,
    BreakerState,
    CircuitBreaker,
    classify,
)
from podium.plugins.api import ProviderError

Transition = tuple[str, str, str, str]


def state(breaker: CircuitBreaker) -> BreakerState:
    # A function, not the property, so that mypy does not narrow across calls.
    return breaker.state


def make(settings: BreakerSettings) -> tuple[CircuitBreaker, ManualClock, list[Transition]]:
    clock = ManualClock()
    transitions: list[Transition] = []
    breaker = CircuitBreaker("provider:openai", settings, clock, lambda *t: transitions.append(t))
    return breaker, clock, transitions


# -- count mode -------------------------------------------------------------------


def test_opens_after_consecutive_failures() -> None:
    breaker, _, transitions = make(BreakerSettings(failure_threshold=3, cooldown=10))
    breaker.record_failure("provider.timeout")
    breaker.record_failure("provider.timeout")
    breaker.record_success()  # resets the streak
    breaker.record_failure("provider.timeout")
    breaker.record_failure("provider.timeout")
    assert state(breaker) is BreakerState.CLOSED and breaker.allow()
    breaker.record_failure("provider.server_error")
    assert state(breaker) is BreakerState.OPEN and not breaker.allow()
    assert transitions == [
        (
            "provider:openai",
            "CLOSED",
            "OPEN",
            "3 consecutive failures (last: provider.server_error)",
        )
    ]


def test_ignored_calls_neither_count_nor_reset() -> None:
    breaker, _, _ = make(BreakerSettings(failure_threshold=2))
    breaker.record_failure("x")
    breaker.record_ignored()
    breaker.record_failure("x")
    assert state(breaker) is BreakerState.OPEN


# -- half-open ------------------------------------------------------------------------


def test_cooldown_then_a_single_probe() -> None:
    breaker, clock, transitions = make(BreakerSettings(failure_threshold=1, cooldown=30))
    breaker.record_failure("provider.overloaded")
    assert breaker.retry_in() == 30.0
    clock.advance(29.0)
    assert not breaker.allow() and breaker.retry_in() == pytest.approx(1.0)
    clock.advance(1.0)
    assert breaker.retry_in() is None
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    assert state(breaker) is BreakerState.HALF_OPEN
    breaker.record_success()
    assert state(breaker) is BreakerState.CLOSED and breaker.allow()
    assert [(old, new, cause) for _, old, new, cause in transitions] == [
        ("CLOSED", "OPEN", "1 consecutive failures (last: provider.overloaded)"),
        ("OPEN", "HALF_OPEN", "cooldown elapsed"),
        ("HALF_OPEN", "CLOSED", "probe succeeded"),
    ]


def test_failed_probe_reopens_with_a_new_cooldown() -> None:
    breaker, clock, transitions = make(BreakerSettings(failure_threshold=1, cooldown=10))
    breaker.record_failure("a")
    clock.advance(10)
    assert breaker.allow()
    breaker.record_failure("provider.timeout")
    assert state(breaker) is BreakerState.OPEN and breaker.retry_in() == 10.0
    assert transitions[-1][1:] == ("HALF_OPEN", "OPEN", "probe failed: provider.timeout")


def test_an_ignored_probe_lets_the_next_probe_in() -> None:
    breaker, clock, _ = make(BreakerSettings(failure_threshold=1, cooldown=10))
    breaker.record_failure("a")
    clock.advance(10)
    assert breaker.allow()
    breaker.record_ignored()  # a 429: says nothing about health
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow() and not breaker.allow()


def test_late_results_while_open_change_nothing() -> None:
    breaker, clock, _ = make(BreakerSettings(failure_threshold=1, cooldown=10))
    breaker.record_failure("a")
    clock.advance(5)
    breaker.record_success()
    breaker.record_failure("b")
    assert state(breaker) is BreakerState.OPEN and breaker.retry_in() == 5.0


# -- rate mode ------------------------------------------------------------------------------


def test_rate_mode_needs_min_calls_within_the_window() -> None:
    settings = BreakerSettings(
        failure_threshold=None, failure_rate=0.5, window=60, min_calls=4, cooldown=5
    )
    breaker, clock, transitions = make(settings)
    breaker.record_failure("x")
    breaker.record_failure("x")
    breaker.record_failure("x")
    assert state(breaker) is BreakerState.CLOSED  # 3 calls < min_calls
    clock.advance(61)  # those fall out of the window
    for _ in range(3):
        breaker.record_success()
    breaker.record_failure("x")
    assert state(breaker) is BreakerState.CLOSED  # 1 of 4
    breaker.record_failure("x")
    breaker.record_failure("provider.connection")
    assert state(breaker) is BreakerState.OPEN  # 3 of 6
    assert transitions[-1][3] == "3 of 6 calls failed in 60s (last: provider.connection)"


def test_probe_success_resets_the_window() -> None:
    settings = BreakerSettings(failure_threshold=None, failure_rate=0.5, min_calls=2, cooldown=1)
    breaker, clock, _ = make(settings)
    breaker.record_failure("x")
    breaker.record_failure("x")
    clock.advance(1)
    assert breaker.allow()
    breaker.record_success()
    breaker.record_failure("x")
    assert state(breaker) is BreakerState.CLOSED  # old failures were forgotten
    view = breaker.view()
    assert (view.calls_in_window, view.failures_in_window) == (1, 1)


def test_reset_closes_and_clears() -> None:
    breaker, _, transitions = make(BreakerSettings(failure_threshold=2))
    breaker.record_failure("x")
    breaker.reset()
    breaker.record_failure("x")
    assert state(breaker) is BreakerState.CLOSED  # the streak was cleared
    breaker.record_failure("x")
    breaker.reset()
    assert state(breaker) is BreakerState.CLOSED
    assert transitions[-1][1:] == ("OPEN", "CLOSED", "reset")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_threshold": None, "failure_rate": None},
        {"failure_threshold": 0},
        {"failure_rate": 1.5},
        {"window": 0},
        {"min_calls": 0},
    ],
)
def test_rejects_bad_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        BreakerSettings(**kwargs)  # type: ignore[arg-type]


# -- classification --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (ProviderError("slow down", kind="rate_limited", status=429), "ignored"),
        (ProviderError("busy", kind="overloaded", status=529), "failure"),
        (ProviderError("oops", kind="server_error", status=500), "failure"),
        (ProviderError("slow", kind="timeout"), "failure"),
        (ProviderError("reset", kind="connection"), "failure"),
        (ProviderError("bad", kind="bad_request", status=400), "success"),
        (ProviderError("who", kind="authentication", status=401), "success"),
        (ProviderError("?", kind="new_kind", status=404), "success"),
        (ProviderError("?", kind="new_kind", status=429), "ignored"),
        (ProviderError("?", kind="new_kind"), "failure"),
        (TimeoutError(), "failure"),
        (DeadlineExceeded(), "failure"),
        (ConnectionResetError(), "failure"),
        (KeyError("plugin bug"), "failure"),
        (asyncio.CancelledError(), "ignored"),
        (KeyboardInterrupt(), "ignored"),
    ],
)
def test_classify(error: BaseException, outcome: str) -> None:
    assert classify(error) == outcome


def test_record_dispatches_on_outcome() -> None:
    breaker, _, _ = make(BreakerSettings(failure_threshold=1))
    breaker.record(classify(ProviderError("x", kind="rate_limited")))
    breaker.record(classify(ProviderError("x", kind="bad_request")))
    assert state(breaker) is BreakerState.CLOSED
    breaker.record(classify(TimeoutError()), "timeout")
    assert state(breaker) is BreakerState.OPEN and breaker.view().last_failure == "timeout"


# -- the board -----------------------------------------------------------------------------


def test_board_creates_lists_overrides_and_resets() -> None:
    clock = ManualClock()
    transitions: list[Transition] = []
    board = BreakerBoard(
        BreakerSettings(failure_threshold=5),
        {"model:openai/gpt-4o": BreakerSettings(failure_threshold=1)},
        clock,
        lambda *t: transitions.append(t),
    )
    model = board.breaker("model:openai/gpt-4o")
    assert board.breaker("model:openai/gpt-4o") is model
    provider = board.breaker("provider:openai")
    assert provider.settings.failure_threshold == 5
    model.record_failure("provider.timeout")
    views = board.list()
    assert [(v.name, v.state) for v in views] == [
        ("model:openai/gpt-4o", BreakerState.OPEN),
        ("provider:openai", BreakerState.CLOSED),
    ]
    assert views[0].retry_in == 30.0
    assert transitions[0][0] == "model:openai/gpt-4o"
    assert board.reset("model:openai/gpt-4o") and state(model) is BreakerState.CLOSED
    assert not board.reset("agent:nobody")


def test_board_update_keeps_state() -> None:
    board = BreakerBoard(BreakerSettings(failure_threshold=2), {}, ManualClock())
    breaker = board.breaker("agent:llm")
    breaker.record_failure("x")
    board.update(BreakerSettings(failure_threshold=5), {"agent:llm": BreakerSettings(1)})
    assert breaker.settings.failure_threshold == 1
    breaker.record_failure("x")
    assert state(breaker) is BreakerState.OPEN


def test_board_keeps_each_tenants_breakers_apart() -> None:
    board = BreakerBoard(
        BreakerSettings(failure_threshold=5),
        {"provider:openai": BreakerSettings(failure_threshold=1)},
        ManualClock(),
    )
    acme = board.breaker("provider:openai", "acme")
    globex = board.breaker("provider:openai", "globex")
    assert acme is not globex and globex.settings.failure_threshold == 1
    acme.record_failure("provider.server_error")
    assert (state(acme), state(globex)) == (BreakerState.OPEN, BreakerState.CLOSED)
    assert globex.allow()
    assert [(v.tenant, v.name, v.state) for v in board.list("acme")] == [
        ("acme", "provider:openai", BreakerState.OPEN)
    ]
    # The breaker the settings name is known before any call: every tenant lists it.
    assert [v.tenant for v in board.list()] == ["acme", "default", "globex"]
    assert [(v.name, v.state, v.calls_in_window) for v in board.list("default")] == [
        ("provider:openai", BreakerState.CLOSED, 0)
    ]
    assert board.reset("provider:openai", "default")  # closed already
    assert not board.reset("provider:other", "default")
    assert board.reset("provider:openai", "globex") and state(acme) is BreakerState.OPEN
    assert board.reset("provider:openai", "acme") and state(acme) is BreakerState.CLOSED


def test_known_breakers_are_listed_before_any_call_and_cause_is_the_states() -> None:
    clock = ManualClock()
    board = BreakerBoard(BreakerSettings(failure_threshold=2, cooldown=10), {}, clock)
    board.configure_known(["provider:simulated", "model:simulated/sim-small"])
    assert [(v.name, v.state, v.cause) for v in board.list("default")] == [
        ("model:simulated/sim-small", BreakerState.CLOSED, ""),
        ("provider:simulated", BreakerState.CLOSED, ""),
    ]
    breaker = board.breaker("provider:simulated")
    breaker.record_failure("timeout")
    # One failure does not trip it: closed, with no cause, the failure kept apart.
    view = breaker.view()
    assert (view.state, view.cause, view.last_failure) == (BreakerState.CLOSED, "", "timeout")
    breaker.record_failure("server_error")
    assert breaker.view().cause == "2 consecutive failures (last: server_error)"
    clock.advance(10)
    assert breaker.allow()  # the probe
    breaker.record_success()
    view = breaker.view()
    assert (view.state, view.cause) == (BreakerState.CLOSED, "probe succeeded")
    assert view.last_failure == "server_error"
