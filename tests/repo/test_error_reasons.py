"""The ErrorReason enum of the contract (protos/podium/v1/error_reason.proto) lists exactly the
ErrorInfo reasons the server can send.

The reasons are read from the server's source: the default `reason` of each domain error class,
every `reason="..."` given to one of those classes (or to `status.invalid`), and the third
argument of `invalid(...)`. A reason held in a variable would escape this reading, so anything but
a literal (or a pass-through: another error's `.reason`, a `reason` parameter) fails the test.
"""

from __future__ import annotations

import ast
from pathlib import Path

from podium.v1 import error_reason_pb2

REPO = Path(__file__).resolve().parents[2]
SERVER = REPO / "server" / "podium"
PREFIX = "ERROR_REASON_"
BASE = "PodiumError"


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in sorted(SERVER.rglob("*.py"))]


def _error_classes(modules: list[tuple[Path, ast.Module]]) -> dict[str, str]:
    """Name -> default reason of PodiumError and every class deriving from it."""
    classes: dict[str, ast.ClassDef] = {}
    for _, module in modules:
        for node in ast.walk(module):
            if isinstance(node, ast.ClassDef):
                classes[node.name] = node
    errors: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for name, node in classes.items():
            bases = {b.id for b in node.bases if isinstance(b, ast.Name)}
            if name not in errors and (name == BASE or bases & set(errors)):
                default = next(iter(errors[b] for b in bases if b in errors), "")
                errors[name] = _class_reason(node) or default
                changed = True
    return errors


def _class_reason(node: ast.ClassDef) -> str:
    for statement in node.body:
        target = None
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, value = statement.targets[0], statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            target, value = statement.target, statement.value
        if isinstance(target, ast.Name) and target.id == "reason":
            assert isinstance(value, ast.Constant) and isinstance(value.value, str)
            return value.value
    return ""


def _called_name(call: ast.Call) -> str:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return ""


_IDENTITY_ERRORS = frozenset({"Unauthenticated", "PermissionDenied"})
_OTHER_SENDERS = frozenset({"invalid", "_abort", "ErrorInfo", *_IDENTITY_ERRORS})


def server_reasons() -> dict[str, list[str]]:
    """Every reason the server's code can send -> where it is written."""
    modules = _modules()
    errors = _error_classes(modules)
    found: dict[str, list[str]] = {}
    for reason in errors.values():
        found.setdefault(reason, []).append("server/podium/core/errors.py")
    for path, module in modules:
        where = path.relative_to(REPO).as_posix()
        for node in ast.walk(module):
            if not isinstance(node, ast.Call):
                continue
            name = _called_name(node)
            given: list[ast.expr] = [k.value for k in node.keywords if k.arg == "reason"]
            if name == "invalid" and len(node.args) >= 3:
                given.append(node.args[2])
            # Identity's refusals (podium.identity.errors) take the reason second;
            # the interceptor's _abort fourth; an ErrorInfo built in place by keyword.
            if name in _IDENTITY_ERRORS and len(node.args) >= 2:
                given.append(node.args[1])
            if name == "_abort" and len(node.args) >= 4:
                given.append(node.args[3])
            if name not in errors and name not in _OTHER_SENDERS:
                continue
            for value in given:
                if isinstance(value, ast.Attribute) and value.attr == "reason":
                    continue  # another error's reason, passed through
                if isinstance(value, ast.Name) and value.id == "reason":
                    continue  # a `reason` parameter handed on (its callers are read too)
                assert isinstance(value, ast.Constant) and isinstance(value.value, str), (
                    f"{where}:{node.lineno}: give {name}() its reason as a literal"
                )
                found.setdefault(value.value, []).append(f"{where}:{node.lineno}")
    return found


def contract_reasons() -> set[str]:
    names = set(error_reason_pb2.ErrorReason.keys()) - {f"{PREFIX}UNSPECIFIED"}
    assert all(name.startswith(PREFIX) for name in names)
    return {name.removeprefix(PREFIX) for name in names}


def test_the_reading_finds_the_reasons_it_should() -> None:
    # Guards the reader itself: a class default, a keyword and invalid()'s third argument.
    found = server_reasons()
    assert {"INTERNAL", "INVALID_ARGUMENT", "RUN_NOT_FOUND", "MALFORMED_REQUEST"} <= set(found)


def test_every_reason_the_server_sends_is_in_the_contract() -> None:
    missing = {r: w for r, w in server_reasons().items() if r not in contract_reasons()}
    assert not missing, f"add these to ErrorReason in error_reason.proto: {missing}"


def test_every_reason_in_the_contract_is_sent_by_the_server() -> None:
    unused = contract_reasons() - set(server_reasons())
    assert not unused, f"ErrorReason lists reasons the server never sends: {sorted(unused)}"
