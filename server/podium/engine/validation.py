"""Checks a workflow definition and compiles it into an execution plan.

Every problem is reported at once, each naming the offending field, so that a
user fixes a definition in one round trip.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from podium.core import limits
from podium.core.errors import FieldViolation, InvalidArgument
from podium.core.expressions import (
    STEP_SCOPE,
    Expression,
    ExpressionError,
    compile_expression,
    step_references,
)
from podium.core.schemas import schema_problem
from podium.core.spec import RetrierSpec, StepSpec, WorkflowSpec
from podium.core.templates import Template, compile_template
from podium.engine import graph
from podium.engine.retry import Retrier, retrier_violations
from podium.plugins.api import Agent, Catalog, config_problems

# Steps compiled between two yields of _compiling.
STEPS_PER_SLICE = 100
STEP_ID = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,63}")
FAN_OUT_SCOPE = (*STEP_SCOPE, "item", "index")
LOOP_SCOPE = (*STEP_SCOPE, "iteration", "previous")
UNTIL_SCOPE = (*STEP_SCOPE, "iteration", "output")
COMPENSATION_SCOPE = ("input", "output")
SIGNAL_SCOPE = (*STEP_SCOPE, "payload")
SIGNAL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
# A name as CEL and templates spell one (see StepPlan.input_names).
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class StepPlan:
    """One step, compiled."""

    spec: StepSpec
    inputs: dict[str, Expression]
    # Steps whose outputs any of its expressions read: only those are handed
    # to CEL, so evaluation cost does not grow with the run.
    refs: frozenset[str]
    retry: tuple[Retrier, ...]
    # Per input key, the steps that key's expression reads, where fewer than
    # `refs`: a join's 500 inputs each see the one step they read, not all
    # 500 (CEL converts every variable it is handed, per evaluation).
    input_refs: dict[str, frozenset[str]] = field(default_factory=dict)
    # The names its input expressions spell: every variable they read is among
    # them (a string literal may add some). The step runner evaluates them in a
    # worker thread when one of those variables holds a large value.
    input_names: frozenset[str] = frozenset()
    when: Expression | None = None
    items: Expression | None = None
    until: Expression | None = None
    wait_time: Expression | None = None
    prompt: Template | None = None
    signal_filter: Expression | None = None
    compensation_inputs: dict[str, Expression] = field(default_factory=dict)
    # for_each.concurrency_key, compiled.
    concurrency_key: Expression | None = None

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(frozen=True, slots=True)
class Plan:
    """A valid workflow, compiled: what the scheduler needs to run it."""

    spec: WorkflowSpec
    steps: dict[str, StepPlan]
    dependencies: dict[str, list[str]]
    dependents: dict[str, list[str]]
    output: dict[str, Expression]
    output_refs: frozenset[str]
    final_steps: list[str]
    levels: list[list[str]]
    critical_path: list[str]
    # run_concurrency.key, compiled (over `input`).
    run_key: Expression | None = None


class _Checker:
    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def problem(self, field: str, description: str) -> None:
        self.violations.append(FieldViolation(field, description))

    def positive(self, value: float | None, field: str) -> None:
        if value is not None and not value > 0:
            self.problem(field, "must be positive")

    def schema(self, schema: Mapping[str, Any] | None, field: str) -> None:
        problem = None if schema is None else schema_problem(schema)
        if problem is not None:
            self.problem(field, f"not a JSON Schema: {problem}")

    def compile(
        self, source: str, field: str, variables: Sequence[str] = STEP_SCOPE
    ) -> Expression | None:
        try:
            return compile_expression(source, variables)
        except ExpressionError as error:
            self.problem(field, f"invalid CEL expression: {error}")
            return None

    def references(
        self, source: str, field: str, allowed: Callable[[str], bool], known: dict[str, int]
    ) -> set[str]:
        """Reports references to steps outside `allowed`; returns the references."""
        referenced = step_references(source)
        if referenced is None:
            self.problem(field, "steps must be referenced by name (steps.<id> or steps['<id>'])")
            return set()
        for step_id in sorted(referenced):
            if step_id not in known:
                self.problem(field, f"references unknown step {step_id!r}")
            elif not allowed(step_id):
                self.problem(
                    field,
                    f"references step {step_id!r}, which is not an ancestor "
                    "(add it to depends_on, directly or through another step)",
                )
        return referenced

    def retriers(self, retriers: Iterable[RetrierSpec], field: str) -> tuple[Retrier, ...]:
        compiled = tuple(
            Retrier(
                error_equals=tuple(r.error_equals),
                interval=r.interval,
                backoff_rate=r.backoff_rate,
                max_interval=r.max_interval,
                max_attempts=r.max_attempts,
                jitter=r.jitter,
            )
            for r in retriers
        )
        self.violations += retrier_violations(compiled, field)
        return compiled


def compile_plan(
    spec: WorkflowSpec, catalog: Catalog, agent_lookup: Callable[[str], Agent | None]
) -> Plan:
    """Returns the plan of a valid spec, or raises InvalidArgument listing every problem."""
    compiling = _compiling(spec, catalog, agent_lookup)
    while True:
        try:
            next(compiling)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def _compiling(
    spec: WorkflowSpec, catalog: Catalog, agent_lookup: Callable[[str], Agent | None]
) -> Generator[None, None, Plan]:
    """compile_plan's work, yielding every STEPS_PER_SLICE steps and between
    its whole-graph passes (where a caller could pause it)."""
    check = _Checker()
    problem = check.problem
    if not spec.steps:
        problem("spec.steps", "a workflow needs at least one step")
    check_step_count(len(spec.steps))
    if spec.max_concurrency < 0:
        problem("spec.max_concurrency", "must be 0 (server default) or positive")
    check.positive(spec.timeout, "spec.timeout")
    if spec.notification is not None:
        _check_notification(check, spec.notification.url, spec.notification.secret)
    check.schema(spec.input_schema, "spec.input_schema")
    check.schema(spec.output_schema, "spec.output_schema")
    default_retry = check.retriers(spec.retry, "spec.retry")

    index_of: dict[str, int] = {}
    for i, step in enumerate(spec.steps):
        if i and not i % STEPS_PER_SLICE:
            yield
        where = f"spec.steps[{i}]"
        if not STEP_ID.match(step.id):
            problem(
                f"{where}.id",
                f"step id {step.id!r} must match [a-z_][a-z0-9_]* (at most 63 characters)",
            )
        elif step.id in index_of:
            problem(
                f"{where}.id",
                f"duplicate step id {step.id!r} (also spec.steps[{index_of[step.id]}])",
            )
        else:
            index_of[step.id] = i
        _check_kind(check, step, where, catalog, agent_lookup)
        check.schema(step.output_schema, f"{where}.output_schema")

    edges: dict[str, list[str]] = {}
    for i, step in enumerate(spec.steps):
        if index_of.get(step.id) != i:
            continue
        deps: list[str] = []
        for k, dep in enumerate(step.depends_on):
            if dep not in index_of:
                problem(f"spec.steps[{i}].depends_on[{k}]", f"unknown step {dep!r}")
            elif dep not in deps:
                deps.append(dep)
        edges[step.id] = deps

    cycle = graph.find_cycle(edges)
    if cycle is not None:
        problem(
            f"spec.steps[{index_of[cycle[0]]}].depends_on",
            "dependency cycle: " + " -> ".join(cycle),
        )
        raise InvalidArgument("invalid workflow", check.violations, reason="INVALID_WORKFLOW")

    yield  # each whole-graph pass below takes tens of milliseconds at 10,000 steps
    ancestry = graph.Ancestry(edges)
    yield
    steps: dict[str, StepPlan] = {}
    for step_id, i in index_of.items():
        if i and not i % STEPS_PER_SLICE:
            yield
        steps[step_id] = _compile_step(
            check, spec.steps[i], f"spec.steps[{i}]", ancestry, index_of, default_retry
        )

    output: dict[str, Expression] = {}
    output_refs: set[str] = set()
    for key, source in spec.output.items():
        field = f"spec.output.{key}"
        expression = check.compile(source, field)
        if expression is not None:
            output[key] = expression
            output_refs |= check.references(source, field, lambda _: True, index_of)

    run_key = None
    if spec.run_concurrency is not None:
        run_key = check.compile(spec.run_concurrency.key, "spec.run_concurrency.key", ("input",))
        if spec.run_concurrency.max_runs < 1:
            check.problem("spec.run_concurrency.max_runs", "must be at least 1")

    if check.violations:
        raise InvalidArgument("invalid workflow", check.violations, reason="INVALID_WORKFLOW")

    yield
    dependents = graph.dependents_of(edges)
    yield
    levels = graph.levels(edges)
    yield
    critical_path = graph.critical_path(edges)
    return Plan(
        spec=spec,
        steps=steps,
        dependencies=edges,
        dependents=dependents,
        output=output,
        output_refs=frozenset(output_refs),
        final_steps=[step_id for step_id, after in dependents.items() if not after],
        levels=levels,
        critical_path=critical_path,
        run_key=run_key,
    )


def check_step_count(count: int) -> None:
    """Rejects an oversized definition before any other work on it (servicers call
    this before translating the request, so 10^5 steps cost nothing)."""
    max_steps = limits.current().max_steps
    if count > max_steps:
        raise InvalidArgument(
            "invalid workflow",
            [FieldViolation("spec.steps", f"at most {max_steps} steps (max_steps), got {count}")],
            reason="INVALID_WORKFLOW",
        )


def _check_kind(
    check: _Checker,
    step: StepSpec,
    where: str,
    catalog: Catalog,
    agent_lookup: Callable[[str], Agent | None],
) -> None:
    """A step is exactly one of: an agent step, a wait, an approval, a
    wait_for_signal, a callback."""
    kinds = [k for k, on in (("agent", bool(step.agent)), ("wait", step.wait is not None),
                             ("approval", step.approval is not None),
                             ("wait_for_signal", step.wait_for_signal is not None),
                             ("callback", step.callback is not None),
                             ("workflow", step.workflow is not None)) if on]  # fmt: skip
    if not kinds:
        check.problem(
            f"{where}.agent",
            "an agent is required (or a wait, approval, wait_for_signal, callback or workflow)",
        )
    elif len(kinds) > 1:
        check.problem(
            f"{where}.{kinds[1]}",
            f"a step is one of agent, wait, approval, wait_for_signal, callback, workflow; "
            f"got {kinds}",
        )
    if step.wait_for_signal is not None:
        if not SIGNAL_NAME.fullmatch(step.wait_for_signal.name):
            check.problem(f"{where}.wait_for_signal.name", "must match [A-Za-z0-9_.-]{1,128}")
        check.positive(step.wait_for_signal.timeout, f"{where}.wait_for_signal.timeout")
    if step.callback is not None:
        check.positive(step.callback.timeout, f"{where}.callback.timeout")
    if step.workflow is not None:
        if not step.workflow.name:
            check.problem(f"{where}.workflow.name", "a child workflow's name is required")
        if step.workflow.version < 0:
            check.problem(f"{where}.workflow.version", "must be 0 (latest) or positive")
        if step.input:
            check.problem(f"{where}.input", "a workflow step takes workflow.input instead")
    if step.agent:
        agent = agent_lookup(step.agent)
        if agent is None and step.task_queue:
            pass  # served by the queue's workers, which may connect later
        elif agent is None:
            known = ", ".join(sorted(catalog.agent_names)) or "none"
            check.problem(f"{where}.agent", f"unknown agent {step.agent!r} (registered: {known})")
        else:
            for field, reason in config_problems(agent, step.config, catalog):
                check.problem(f"{where}.config.{field}" if field else f"{where}.config", reason)
    elif step.for_each is not None or step.loop is not None:
        check.problem(f"{where}.agent", "for_each and loop need an agent")
    if step.for_each is not None and step.loop is not None:
        check.problem(f"{where}.loop", "a step cannot have both for_each and loop")
    if step.compensate is not None:
        compensation = agent_lookup(step.compensate.agent) if step.compensate.agent else None
        if compensation is None and step.compensate.agent and step.task_queue:
            pass  # served by the queue's workers
        elif compensation is None:
            check.problem(f"{where}.compensate.agent", f"unknown agent {step.compensate.agent!r}")
        else:
            for field, reason in config_problems(compensation, step.compensate.config, catalog):
                path = f"{where}.compensate.config"
                check.problem(f"{path}.{field}" if field else path, reason)
    for index, tool in enumerate(step.tools):
        if tool not in catalog.tool_names:
            known = ", ".join(sorted(catalog.tool_names)) or "none"
            check.problem(f"{where}.tools[{index}]", f"unknown tool {tool!r} (registered: {known})")
    check.positive(step.attempt_timeout, f"{where}.attempt_timeout")
    check.positive(step.heartbeat_timeout, f"{where}.heartbeat_timeout")
    if step.task_queue and not _QUEUE_NAME.fullmatch(step.task_queue):
        check.problem(f"{where}.task_queue", "must match [A-Za-z0-9_.-]{1,63}")
    check.positive(step.timeout, f"{where}.timeout")
    if step.cache is not None:
        check.positive(step.cache.ttl, f"{where}.cache.ttl")
    if step.approval is not None:
        check.positive(step.approval.timeout, f"{where}.approval.timeout")
    if step.wait is not None:
        given = [
            step.wait.duration is not None,
            step.wait.time is not None,
            bool(step.wait.time_expression),
        ]
        if sum(given) != 1:
            check.problem(f"{where}.wait", "give exactly one of duration, time, time_expression")
        if step.wait.duration is not None and not step.wait.duration >= 0:
            check.problem(f"{where}.wait.duration", "must not be negative")
    if step.for_each is not None:
        fan_out = step.for_each
        if fan_out.max_concurrency < 0:
            check.problem(f"{where}.for_each.max_concurrency", "must not be negative")
        if fan_out.tolerated_failure_count < 0:
            check.problem(f"{where}.for_each.tolerated_failure_count", "must not be negative")
        if not 0 <= fan_out.tolerated_failure_percent <= 100:
            check.problem(f"{where}.for_each.tolerated_failure_percent", "must be within 0..100")
        if fan_out.max_per_key < 0:
            check.problem(f"{where}.for_each.max_per_key", "must not be negative")
        elif bool(fan_out.concurrency_key) != bool(fan_out.max_per_key):
            missing = "max_per_key" if fan_out.concurrency_key else "concurrency_key"
            check.problem(
                f"{where}.for_each.{missing}", "concurrency_key and max_per_key go together"
            )
    max_iterations = limits.current().max_loop_iterations
    if step.loop is not None and not 1 <= step.loop.max_iterations <= max_iterations:
        check.problem(
            f"{where}.loop.max_iterations",
            f"required, between 1 and the server limit {max_iterations} (max_loop_iterations)",
        )


def _compile_step(
    check: _Checker,
    step: StepSpec,
    where: str,
    ancestry: graph.Ancestry,
    index_of: dict[str, int],
    default_retry: tuple[Retrier, ...],
) -> StepPlan:
    refs: set[str] = set()

    def ancestors(other: str) -> bool:
        return ancestry.depends_on(step.id, other)

    read_refs: dict[str, frozenset[str]] = {}

    def compile_read(source: str, field: str, variables: Sequence[str]) -> Expression | None:
        expression = check.compile(source, field, variables)
        if expression is not None:
            read = check.references(source, field, ancestors, index_of)
            read_refs[field] = frozenset(read)
            refs.update(read)
        return expression

    scope: Sequence[str] = STEP_SCOPE
    if step.for_each is not None:
        scope = FAN_OUT_SCOPE
    elif step.loop is not None:
        scope = LOOP_SCOPE
    inputs: dict[str, Expression] = {}
    # A workflow step's inputs are its child run's input.
    input_map, input_field = step.input, f"{where}.input"
    if step.workflow is not None:
        input_map, input_field = step.workflow.input, f"{where}.workflow.input"
    for key, source in input_map.items():
        expression = compile_read(source, f"{input_field}.{key}", scope)
        if expression is not None:
            inputs[key] = expression

    when = compile_read(step.when, f"{where}.when", STEP_SCOPE) if step.when else None
    items = until = wait_time = None
    concurrency_key = None
    if step.for_each is not None:
        items = compile_read(step.for_each.items, f"{where}.for_each.items", STEP_SCOPE)
        if step.for_each.concurrency_key:
            concurrency_key = compile_read(
                step.for_each.concurrency_key, f"{where}.for_each.concurrency_key", FAN_OUT_SCOPE
            )
    if step.loop is not None:
        until = compile_read(step.loop.until, f"{where}.loop.until", UNTIL_SCOPE)
    if step.wait is not None and step.wait.time_expression:
        wait_time = compile_read(
            step.wait.time_expression, f"{where}.wait.time_expression", STEP_SCOPE
        )
    prompt: Template | None = None
    if step.approval is not None and step.approval.prompt:
        try:
            prompt = compile_template(step.approval.prompt, STEP_SCOPE)
            refs.update(
                check.references(
                    step.approval.prompt, f"{where}.approval.prompt", ancestors, index_of
                )
            )
        except ExpressionError as error:
            check.problem(f"{where}.approval.prompt", f"invalid template: {error}")
    signal_filter = None
    if step.wait_for_signal is not None and step.wait_for_signal.filter:
        signal_filter = compile_read(
            step.wait_for_signal.filter, f"{where}.wait_for_signal.filter", SIGNAL_SCOPE
        )
    compensation_inputs: dict[str, Expression] = {}
    if step.compensate is not None:
        for key, source in step.compensate.input.items():
            expression = check.compile(
                source, f"{where}.compensate.input.{key}", COMPENSATION_SCOPE
            )
            if expression is not None:
                compensation_inputs[key] = expression
    retry = check.retriers(step.retry, f"{where}.retry") if step.retry else default_retry
    all_refs = frozenset(refs)
    input_refs = {
        key: read_refs[f"{input_field}.{key}"]
        for key in inputs
        if len(read_refs[f"{input_field}.{key}"]) < len(all_refs)
    }
    return StepPlan(
        spec=step,
        inputs=inputs,
        refs=all_refs,
        retry=retry,
        input_refs=input_refs,
        input_names=frozenset(NAME.findall(" ".join(e.source for e in inputs.values()))),
        when=when,
        items=items,
        until=until,
        wait_time=wait_time,
        prompt=prompt,
        signal_filter=signal_filter,
        compensation_inputs=compensation_inputs,
        concurrency_key=concurrency_key,
    )


def _check_notification(check: _Checker, url: str, secret: str) -> None:
    check_notification(url, secret, "spec.notification", check.problem)


def check_notification(
    url: str, secret: str, field: str, problem: Callable[[str, str], None]
) -> None:
    """A notification needs an http(s) URL and the name of the secret that signs it."""
    if not url.startswith(("http://", "https://")) or len(url) > 2048:
        problem(f"{field}.url", "must be an http:// or https:// URL (at most 2048 characters)")
    if not SIGNAL_NAME.fullmatch(secret):
        problem(f"{field}.secret", "must name a server secret ([A-Za-z0-9_.-]{1,128})")
