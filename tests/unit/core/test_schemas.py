"""JSON Schema checks and how their violations are named."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from podium.core.schemas import (
    MAX_VIOLATIONS,
    dotted_path,
    first_violation,
    json_pointer,
    schema_problem,
    violations,
)


def test_pointer_and_dotted_forms() -> None:
    assert json_pointer([]) == ""
    assert json_pointer(["items", 0, "a/b", "c~d"]) == "/items/0/a~1b/c~0d"
    assert dotted_path(["fallbacks", 0, "provider"]) == "fallbacks[0].provider"
    assert dotted_path([]) == ""


def test_schema_problem_names_the_place() -> None:
    assert schema_problem({"type": "object"}) is None
    problem = schema_problem({"properties": {"a": {"type": "nope"}}})
    assert problem is not None and "/properties/a/type" in problem


def test_violations_are_in_document_order_and_bounded() -> None:
    schema = {"type": "array", "items": {"type": "integer"}}
    found = violations(schema, ["x"] * 100)
    assert len(found) == MAX_VIOLATIONS
    assert [path for path, _ in found] == [(index,) for index in range(MAX_VIOLATIONS)]


def test_first_violation_reads_as_a_sentence() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    assert first_violation(schema, {"n": 1}) is None
    assert first_violation(None, "anything") is None
    assert first_violation(schema, {"n": "1"}) == "at /n: '1' is not of type 'integer'"


@given(st.integers(min_value=-(2**53), max_value=2**53))
def test_integers_satisfy_integer_schemas(value: int) -> None:
    assert violations({"type": "integer"}, value) == []
    assert violations({"type": "integer"}, str(value)) != []


def test_only_references_inside_the_schema_are_allowed() -> None:
    local = {"$defs": {"qty": {"type": "integer"}}, "items": {"$ref": "#/$defs/qty"}}
    assert schema_problem(local) is None
    assert violations(local, [1, "x"]) == [((1,), "'x' is not of type 'integer'")]
    remote = schema_problem({"$ref": "https://example.com/schema.json"})
    assert remote is not None and "only references inside the schema" in remote
    nowhere = schema_problem({"items": {"$ref": "#/$defs/missing"}})
    assert nowhere is not None and "leads nowhere" in nowhere


def test_a_schema_that_cannot_be_applied_is_a_violation_not_a_crash() -> None:
    # Stored before references were checked, or endlessly recursive: reported, never raised.
    assert "cannot be applied" in (first_violation({"$ref": "#"}, 1) or "")
    assert "cannot be applied" in violations({"$ref": "#/nope"}, 1)[0][1]
