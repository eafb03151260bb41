"""Resource names: callers may say "erp" or "workflows/erp", the contract wants the latter."""

from __future__ import annotations

__all__ = ["resource_id", "run_name", "workflow_name"]

_WORKFLOWS = "workflows/"
_RUNS = "runs/"


def _normalize(collection: str, kind: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError(f"empty {kind} name")
    if value.startswith(collection):
        return value
    if "/" in value:
        # "runs/x" passed where a workflow is expected is a caller mistake worth naming early,
        # rather than a NOT_FOUND for "workflows/runs/x" from the server.
        raise ValueError(f"expected {collection}{{id}} or a bare id, got {value!r}")
    return collection + value


def workflow_name(value: str) -> str:
    """ "erp" or "workflows/erp" -> "workflows/erp"."""
    return _normalize(_WORKFLOWS, "workflow", value)


def run_name(value: str) -> str:
    """ "abc" or "runs/abc" -> "runs/abc"."""
    return _normalize(_RUNS, "run", value)


def resource_id(name: str) -> str:
    """The last segment of a resource name: "workflows/erp" -> "erp"."""
    return name.rsplit("/", 1)[-1]
