"""The OpenTelemetry instruments of runs, steps, attempts, waits and LLM
calls (`gen_ai.client.*` as the GenAI semantic conventions name them), and
gauges read from the server when a reader collects."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from opentelemetry.metrics import CallbackOptions, Histogram, Meter, MeterProvider, Observation

from podium.telemetry.version import VERSION

# Seconds: GenAI's advised buckets for operation durations, which also fit steps.
DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
T = TypeVar("T")
BREAKER_STATES = {"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2}


@dataclass
class Gauges:
    """What the server reports when metrics are collected (each optional)."""

    active_runs: Callable[[], int] | None = None
    running_steps: Callable[[], int] | None = None
    subscribers: Callable[[], int] | None = None
    workers: Callable[[], int] | None = None
    # (budget name, spent + reserved over limit)
    budget_utilization: Callable[[], Iterable[tuple[str, float]]] | None = None
    # (breaker name, CLOSED | HALF_OPEN | OPEN)
    breaker_states: Callable[[], Iterable[tuple[str, str]]] | None = None
    # (batches committed, rows in them, seconds spent committing), cumulative
    store_commits: Callable[[], tuple[int, int, float]] | None = None
    event_loop_lag: Callable[[], float] | None = None
    extra: dict[str, Callable[[], float]] = field(default_factory=dict)


class RunMetrics:
    def __init__(self, provider: MeterProvider) -> None:
        meter = provider.get_meter("podium", VERSION)
        self.meter = meter
        self.runs_started = meter.create_counter(
            "podium.runs.started", unit="{run}", description="Runs started or resumed"
        )
        self.runs_finished = meter.create_counter(
            "podium.runs.finished", unit="{run}", description="Runs ended, by final state"
        )
        self.run_duration = _seconds(meter, "podium.run.duration", "Runs, start to end")
        self.step_duration = _seconds(meter, "podium.step.duration", "Steps, start to end")
        self.attempt_duration = _seconds(meter, "podium.attempt.duration", "Agent attempts")
        self.retries = meter.create_counter(
            "podium.attempt.retries", unit="{retry}", description="Attempts retried, by error"
        )
        self.waits = _seconds(
            meter, "podium.wait.duration", "Time waiting for slots, quotas and breakers"
        )
        self.operation_duration = _seconds(
            meter, "gen_ai.client.operation.duration", "GenAI operation duration"
        )
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.cost = meter.create_counter(
            "podium.llm.cost", unit="USD", description="What LLM calls cost"
        )
        self.tool_calls = meter.create_counter(
            "podium.tool.calls", unit="{call}", description="Tool calls, by tool and outcome"
        )
        self.breaker_transitions = meter.create_counter(
            "podium.breaker.transitions", unit="{transition}", description="Breaker changes"
        )
        self.alerts = AlertCounters(meter)

    def observe(self, gauges: Gauges) -> None:
        """Registers the server's gauges (read on each collection)."""
        meter = self.meter

        def single(read: Callable[[], float]) -> Callable[[CallbackOptions], list[Observation]]:
            def observe(_options: CallbackOptions) -> list[Observation]:
                # Read on the collecting thread (Prometheus's): a dict of the
                # server changing meanwhile skips this collection.
                try:
                    return [Observation(read())]
                except RuntimeError:
                    return []

            return observe

        if gauges.active_runs is not None:
            meter.create_observable_up_down_counter(
                "podium.runs.active", [single(gauges.active_runs)], unit="{run}"
            )
        if gauges.running_steps is not None:
            meter.create_observable_up_down_counter(
                "podium.steps.running", [single(gauges.running_steps)], unit="{step}"
            )
        if gauges.subscribers is not None:
            meter.create_observable_up_down_counter(
                "podium.subscribers", [single(gauges.subscribers)], unit="{subscriber}"
            )
        if gauges.workers is not None:
            meter.create_observable_up_down_counter(
                "podium.workers", [single(gauges.workers)], unit="{session}"
            )
        if gauges.event_loop_lag is not None:
            meter.create_observable_gauge(
                "podium.event_loop.lag", [single(gauges.event_loop_lag)], unit="s"
            )
        budgets = _safe(gauges.budget_utilization)
        if budgets is not None:
            meter.create_observable_gauge(
                "podium.budget.utilization",
                [lambda _o: [Observation(v, {"podium.budget": n}) for n, v in budgets()]],
                unit="1",
                description="Spent plus reserved, over the limit, this period",
            )
        breakers = _safe(gauges.breaker_states)
        if breakers is not None:
            meter.create_observable_gauge(
                "podium.breaker.state",
                [
                    lambda _o: [
                        Observation(BREAKER_STATES.get(s, -1), {"podium.breaker": n})
                        for n, s in breakers()
                    ]
                ],
                description="0 closed, 1 half-open, 2 open",
            )
        commits = gauges.store_commits
        if commits is not None:
            meter.create_observable_counter(
                "podium.store.commits", [single(lambda: commits()[0])], unit="{batch}"
            )
            meter.create_observable_counter(
                "podium.store.committed_rows", [single(lambda: commits()[1])], unit="{row}"
            )
            meter.create_observable_counter(
                "podium.store.commit_time", [single(lambda: commits()[2])], unit="s"
            )


class AlertCounters:
    """Governance alerts as counters, by kind (budget_threshold, breaker_opened,
    breaker_closed, quota_wait, budget_wait) and subject (budget:<name>, ...):
    implements podium.governance.alerts.AlertObserver."""

    def __init__(self, meter: Meter) -> None:
        self._raised = meter.create_counter(
            "podium.alerts", unit="{alert}", description="Governance alerts raised"
        )
        self._delivered = meter.create_counter(
            "podium.alerts.delivered", unit="{alert}", description="Alerts the URL accepted"
        )
        self._failures = meter.create_counter(
            "podium.alerts.delivery_failures",
            unit="{attempt}",
            description="Failed alert deliveries (final: given up)",
        )
        self._dropped = meter.create_counter(
            "podium.alerts.dropped", unit="{alert}", description="Alerts dropped, queue full"
        )

    def raised(self, kind: str, subject: str) -> None:
        self._raised.add(1, {"podium.alert.kind": kind, "podium.alert.subject": subject})

    def delivered(self, kind: str, subject: str) -> None:
        self._delivered.add(1, {"podium.alert.kind": kind, "podium.alert.subject": subject})

    def failed(self, kind: str, subject: str, final: bool) -> None:
        self._failures.add(
            1,
            {"podium.alert.kind": kind, "podium.alert.subject": subject, "podium.final": final},
        )

    def dropped(self, kind: str, subject: str) -> None:
        self._dropped.add(1, {"podium.alert.kind": kind, "podium.alert.subject": subject})


def _safe(
    read: Callable[[], Iterable[T]] | None,
) -> Callable[[], list[T]] | None:
    """A reader of the server's state for a collection on another thread
    (the Prometheus endpoint's): a dict changing under it skips this round."""
    if read is None:
        return None

    def safely() -> list[T]:
        try:
            return list(read())
        except RuntimeError:
            return []

    return safely


def _seconds(meter: Meter, name: str, description: str) -> Histogram:
    return meter.create_histogram(
        name,
        unit="s",
        description=description,
        explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
    )
