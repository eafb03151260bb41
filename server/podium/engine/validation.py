"""Checks a workflow definition and compiles it into an execution plan.

Every problem is reported at once, each naming the offending field, so that a
user fixes a definition in one round trip.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from podium.engine import graph
from podium.engine.errors import FieldViolation, InvalidArgument
from podium.engine.expressions import (
    STEP_SCOPE,
    Expression,
    ExpressionError,
    compile_expression,
    step_references,
)
from podium.engine.spec import StepSpec, WorkflowSpec
from podium.plugins.api import Agent, Catalog, config_problems

STEP_ID = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
MAX_STEPS = 10_000


@dataclass(frozen=True, slots=True)
class Plan:
    """A valid workflow, compiled: what the scheduler needs to run it."""

    spec: WorkflowSpec
    steps: dict[str, StepSpec]
    dependencies: dict[str, list[str]]
    dependents: dict[str, list[str]]
    inputs: dict[str, dict[str, Expression]]
    # Steps whose outputs each step's input expressions read: only those are
    # handed to CEL, so evaluation cost does not grow with the run.
    input_refs: dict[str, frozenset[str]]
    output: dict[str, Expression]
    output_refs: frozenset[str]
    final_steps: list[str]
    levels: list[list[str]]
    critical_path: list[str]


def compile_plan(
    spec: WorkflowSpec, catalog: Catalog, agent_lookup: Callable[[str], Agent | None]
) -> Plan:
    """Returns the plan of a valid spec, or raises InvalidArgument listing every problem."""
    violations: list[FieldViolation] = []

    def problem(field: str, description: str) -> None:
        violations.append(FieldViolation(field, description))

    if not spec.steps:
        problem("spec.steps", "a workflow needs at least one step")
    if len(spec.steps) > MAX_STEPS:
        problem("spec.steps", f"at most {MAX_STEPS} steps are allowed, got {len(spec.steps)}")
    if spec.max_concurrency < 0:
        problem("spec.max_concurrency", "must be 0 (server default) or positive")

    index_of: dict[str, int] = {}
    for i, step in enumerate(spec.steps):
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
        if not step.agent:
            problem(f"{where}.agent", "an agent is required")
        else:
            agent = agent_lookup(step.agent)
            if agent is None:
                known = ", ".join(sorted(catalog.agent_names)) or "none"
                problem(f"{where}.agent", f"unknown agent {step.agent!r} (registered: {known})")
            else:
                for field, reason in config_problems(agent, step.config, catalog):
                    problem(f"{where}.config.{field}" if field else f"{where}.config", reason)

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
        raise InvalidArgument("invalid workflow", violations, reason="INVALID_WORKFLOW")

    ancestors = graph.ancestors(edges)
    inputs: dict[str, dict[str, Expression]] = {}
    input_refs: dict[str, frozenset[str]] = {}
    for step_id, i in index_of.items():
        compiled: dict[str, Expression] = {}
        refs: set[str] = set()
        for key, source in spec.steps[i].input.items():
            field = f"spec.steps[{i}].input.{key}"
            expression = _compile(source, field, problem)
            if expression is None:
                continue
            compiled[key] = expression
            refs |= _check_references(source, field, ancestors[step_id], index_of, problem)
        inputs[step_id] = compiled
        input_refs[step_id] = frozenset(refs)

    output: dict[str, Expression] = {}
    output_refs: set[str] = set()
    every_step = set(index_of)
    for key, source in spec.output.items():
        field = f"spec.output.{key}"
        expression = _compile(source, field, problem)
        if expression is not None:
            output[key] = expression
            output_refs |= _check_references(source, field, every_step, index_of, problem)

    if violations:
        raise InvalidArgument("invalid workflow", violations, reason="INVALID_WORKFLOW")

    dependents = graph.dependents_of(edges)
    return Plan(
        spec=spec,
        steps={step.id: step for step in spec.steps},
        dependencies=edges,
        dependents=dependents,
        inputs=inputs,
        input_refs=input_refs,
        output=output,
        output_refs=frozenset(output_refs),
        final_steps=[step_id for step_id, after in dependents.items() if not after],
        levels=graph.levels(edges),
        critical_path=graph.critical_path(edges),
    )


def _compile(source: str, field: str, problem: Callable[[str, str], None]) -> Expression | None:
    try:
        return compile_expression(source, STEP_SCOPE)
    except ExpressionError as error:
        problem(field, f"invalid CEL expression: {error}")
        return None


def _check_references(
    source: str,
    field: str,
    allowed: set[str],
    known: dict[str, int],
    problem: Callable[[str, str], None],
) -> set[str]:
    """Reports references to steps outside `allowed`; returns the references."""
    referenced = step_references(source)
    if referenced is None:
        problem(field, "steps must be referenced by name (steps.<id> or steps['<id>'])")
        return set()
    for step_id in sorted(referenced):
        if step_id not in known:
            problem(field, f"references unknown step {step_id!r}")
        elif step_id not in allowed:
            problem(
                field,
                f"references step {step_id!r}, which is not an ancestor "
                "(add it to depends_on, directly or through another step)",
            )
    return referenced
