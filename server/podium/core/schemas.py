"""JSON Schemas of workflow data: a run's input and output, a step's output,
an agent's config, input and output.

One place decides how a schema is checked and how a violation is named: by
the JSON pointer (RFC 6901) of the offending value, so that a client can find
it in what it sent whatever its language.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.protocols import Validator

__all__ = [
    "MAX_VIOLATIONS",
    "Violation",
    "dotted_path",
    "first_violation",
    "json_pointer",
    "schema_problem",
    "violations",
]

# A value may violate a schema in thousands of places (every item of a long
# list): the first ones are enough to act on, and an error must stay small.
MAX_VIOLATIONS = 20

# (path of the value inside the checked document: keys and list indexes,
# what is wrong).
Violation = tuple[tuple[str | int, ...], str]


def schema_problem(schema: Mapping[str, Any]) -> str | None:
    """Why `schema` is not a JSON Schema (under the draft its `$schema` names,
    2020-12 by default), or None when it is one."""
    try:
        _validator(_canonical(schema))
    except SchemaError as error:
        where = json_pointer(error.absolute_path)
        return f"{error.message} (at {where or '/'})"
    return _reference_problem(schema)


def _reference_problem(schema: Mapping[str, Any]) -> str | None:
    """A `$ref` that could not be followed when a value is checked: Podium
    fetches no schema from elsewhere, so only references inside the schema
    ("#/$defs/item", "#anchor") are allowed, and a pointer must lead somewhere."""
    pending: list[Any] = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
            continue
        if not isinstance(node, Mapping):
            continue
        pending.extend(node.values())
        ref = node.get("$ref")
        if not isinstance(ref, str):
            continue
        if not ref.startswith("#"):
            return f"$ref {ref!r}: only references inside the schema (#/...) are allowed"
        if ref.startswith("#/") and not _resolves(schema, ref[2:]):
            return f"$ref {ref!r} leads nowhere in the schema"
    return None


def _resolves(schema: Mapping[str, Any], pointer: str) -> bool:
    node: Any = schema
    for part in pointer.split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def violations(schema: Mapping[str, Any], value: Any) -> list[Violation]:
    """Where and how `value` violates `schema` (a valid one), in document order,
    at most MAX_VIOLATIONS of them; [] when it satisfies it."""
    validator = _validator(_canonical(schema))
    found: list[Violation] = []
    for error in sorted(_errors(validator, value), key=_document_order):
        found.append((tuple(error.absolute_path), _reason(error)))
        if len(found) == MAX_VIOLATIONS:
            break
    return found


def _errors(validator: Validator, value: Any) -> list[ValidationError]:
    # schema_problem refuses what cannot be followed; a schema stored before
    # that check (or a case it misses) still fails as a violation, not a crash.
    try:
        return list(validator.iter_errors(value))
    except (jsonschema.exceptions.SchemaError, RecursionError) as error:
        return [ValidationError(f"the schema cannot be applied: {error}")]
    except Exception as error:  # referencing's errors have no public base class
        return [ValidationError(f"the schema cannot be applied: {type(error).__name__}: {error}")]


def first_violation(schema: Mapping[str, Any] | None, value: Any) -> str | None:
    """The most relevant violation as one sentence ("at /items/0: 'x' is not
    of type 'integer'"), or None when `value` satisfies `schema` (or there is
    no schema)."""
    if schema is None:
        return None
    validator = _validator(_canonical(schema))
    error = jsonschema.exceptions.best_match(_errors(validator, value))
    if error is None:
        return None
    return f"at {json_pointer(error.absolute_path) or '/'}: {_reason(error)}"


def json_pointer(path: Any) -> str:
    """RFC 6901: "" is the whole document, "/items/0/name" a value inside it."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def dotted_path(path: Any) -> str:
    """The field-path form of the rest of the contract: "items[0].name"."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _reason(error: ValidationError) -> str:
    # A violation deep inside anyOf/oneOf says little by itself; jsonschema's
    # message for the combinator names what was expected.
    return error.message


def _document_order(error: ValidationError) -> tuple[tuple[int, int, str], ...]:
    # List indexes numerically (2 before 10), keys by name.
    return tuple(
        (0, part, "") if isinstance(part, int) else (1, 0, str(part))
        for part in error.absolute_path
    )


def _canonical(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


@functools.lru_cache(maxsize=256)
def _validator(text: str) -> Validator:
    """A checked, compiled validator per distinct schema: a step's output
    schema is checked once per attempt, the schema itself only once."""
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: Validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return validator
