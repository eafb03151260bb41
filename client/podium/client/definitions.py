"""Workflow definitions from YAML/JSON files or mappings, as CreateWorkflowRequest messages.

The file format is the proto JSON mapping of CreateWorkflowRequest:
`{"workflow_id": "erp", "spec": {"steps": [...]}}`, in snake_case or lowerCamelCase.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format

from podium.client import yaml12
from podium.client.errors import DefinitionError
from podium.client.unknown_fields import find_unknown_field
from podium.v1 import workflow_service_pb2

__all__ = ["DefinitionSource", "load_definition", "read_document"]

DefinitionSource = str | Path | Mapping[str, Any]

_JSON_SUFFIXES = frozenset({".json"})
_NESTED = re.compile(r"Failed to parse (\w+) field: ")
_UNKNOWN_FIELD = re.compile(r'Message type "[\w.]+" has no field named "([^"]+)"')


def load_definition(source: DefinitionSource) -> workflow_service_pb2.CreateWorkflowRequest:
    """Parse a definition from a file path (YAML or JSON) or a mapping.

    Raises DefinitionError with a one-line message naming the source and what is wrong.
    """
    if isinstance(source, Mapping):
        return _parse(source, "definition")
    path = Path(source)
    return _parse(read_document(path), str(path))


def read_document(path: Path) -> Any:
    """The YAML/JSON document in `path`; DefinitionError (one line) if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DefinitionError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DefinitionError(f"{path}: is a directory, expected a YAML or JSON file") from None
    except UnicodeDecodeError as error:
        raise DefinitionError(f"{path}: not UTF-8 text ({error.reason})") from None
    except OSError as error:
        raise DefinitionError(f"{path}: cannot read: {error.strerror or error}") from None
    if path.suffix.lower() in _JSON_SUFFIXES:
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise DefinitionError(
                f"{path}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
            ) from None
    # YAML is a superset of JSON, so anything not named .json is read as YAML (1.2: only
    # true/false are booleans, so `country: NO` stays a string).
    try:
        return yaml12.load(text)
    except yaml.YAMLError as error:
        raise DefinitionError(f"{path}: invalid YAML{_yaml_where(error)}") from None


def _parse(document: Any, origin: str) -> workflow_service_pb2.CreateWorkflowRequest:
    if not isinstance(document, Mapping):
        kind = "nothing" if document is None else type(document).__name__
        raise DefinitionError(
            f"{origin}: expected a mapping with 'workflow_id' and 'spec', got {kind}"
        )
    request = workflow_service_pb2.CreateWorkflowRequest()
    unknown = find_unknown_field(document, request.DESCRIPTOR)
    if unknown is not None:
        raise DefinitionError(f"{origin}: {unknown}")
    try:
        json_format.ParseDict(dict(document), request)
    except json_format.ParseError as error:
        raise DefinitionError(f"{origin}: {_parse_error_text(error)}") from None
    # A missing workflow_id is left to the server: it names the field like every other
    # violation, and ValidateWorkflow does not need one.
    return request


def _yaml_where(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or ""
    where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
    return f"{where}: {problem}" if problem else where


def _parse_error_text(error: json_format.ParseError) -> str:
    # ParseError nests "Failed to parse spec field: Failed to parse steps field: ..." and lists
    # every available field over several lines; a field path and the cause fit on one line.
    text = " ".join(str(error).split())
    fields = []
    while match := _NESTED.match(text):
        fields.append(match.group(1))
        text = text[match.end() :]
    unknown = _UNKNOWN_FIELD.match(text)
    if unknown:
        text = f"unknown field {unknown.group(1)!r}"
    else:
        text = text.split(" Available Fields", 1)[0].rstrip(".")
    return f"{'.'.join(fields)}: {text}" if fields else text
