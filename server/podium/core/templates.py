"""Prompt templates: text with `{{ CEL expression }}` placeholders.

CEL rather than Jinja keeps one expression language across workflows (step
inputs and conditions are CEL too) and never executes Python.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any

from podium.core.expressions import Expression, ExpressionError, compile_expression

VARIABLES = ("input",)
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)


class Template:
    """A parsed template: literal text and compiled expressions, in order."""

    __slots__ = ("_parts", "source")

    def __init__(self, source: str, parts: list[str | Expression]) -> None:
        self.source = source
        self._parts = parts

    def render(self, variables: Mapping[str, Any]) -> str:
        """Renders strings as they are and other values as JSON, or raises ExpressionError."""
        out: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = part.evaluate(variables)
            out.append(value if isinstance(value, str) else json.dumps(value))
        return "".join(out)


@functools.lru_cache(maxsize=512)
def compile_template(source: str, variables: tuple[str, ...] = VARIABLES) -> Template:
    """Parses and compiles `source` with `variables` in scope, or raises
    ExpressionError (not cached)."""
    parts: list[str | Expression] = []
    position = 0
    for match in _PLACEHOLDER.finditer(source):
        parts.append(source[position : match.start()])
        expression = match.group(1).strip()
        if not expression:
            raise ExpressionError(f"empty placeholder at offset {match.start()}")
        try:
            parts.append(compile_expression(expression, variables=variables))
        except ExpressionError as error:
            raise ExpressionError(f"{{{{ {expression} }}}}: {error}") from None
        position = match.end()
    rest = source[position:]
    if "{{" in rest:
        raise ExpressionError(f"unclosed '{{{{' at offset {position + rest.index('{{')}")
    parts.append(rest)
    return Template(source, [part for part in parts if part != ""])
