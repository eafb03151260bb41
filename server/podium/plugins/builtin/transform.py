"""The `transform` agent: computes its output from its input with CEL, no LLM."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

from podium.core.expressions import Expression, ExpressionError, compile_expression
from podium.core.failures import INVALID_INPUT
from podium.core.jsonvalues import from_json_numbers
from podium.plugins.api import AgentError, Catalog, ConfigProblem, StepContext
from podium.plugins.builtin import config_schemas
from podium.plugins.builtin.settings import raise_if_invalid, unknown_settings

VARIABLES = ("input",)
_SETTINGS = ("output",)


class TransformAgent:
    """Config `output`: a CEL expression over `input`, or a mapping of output
    keys to CEL expressions."""

    name = "transform"
    description = "Computes its output from its input with CEL expressions (no LLM)."
    version = "1"
    config_schema = config_schemas.TRANSFORM

    async def run(self, ctx: StepContext) -> Any:
        raise_if_invalid(_problems(ctx.config))
        output = ctx.config["output"]
        variables = {"input": from_json_numbers(ctx.input)}
        if isinstance(output, str):
            return _evaluate("output", output, variables)
        return {
            key: _evaluate(f"output.{key}", source, variables) for key, source in output.items()
        }

    def check_config(self, config: Mapping[str, Any], catalog: Catalog) -> list[ConfigProblem]:
        return list(_problems(config))


@functools.lru_cache(maxsize=1024)
def _compiled(source: str) -> Expression:
    return compile_expression(source, variables=VARIABLES)


def _evaluate(field: str, source: str, variables: Mapping[str, Any]) -> Any:
    try:
        return _compiled(source).evaluate(variables)
    except ExpressionError as error:
        raise AgentError(f"{field}: {error}", code=INVALID_INPUT, retryable=False) from None


def _problems(config: Mapping[str, Any]) -> Iterator[ConfigProblem]:
    yield from unknown_settings(config, _SETTINGS)
    output = config.get("output")
    if output is None:
        yield ("output", "required: a CEL expression or a mapping of keys to CEL expressions")
        return
    if isinstance(output, str):
        yield from _check("output", output)
    elif isinstance(output, Mapping) and output:
        for key, source in output.items():
            if isinstance(source, str):
                yield from _check(f"output.{key}", source)
            else:
                yield (f"output.{key}", "must be a CEL expression (a string)")
    else:
        yield ("output", "must be a CEL expression or a non-empty mapping of keys to them")


def _check(field: str, source: str) -> Iterator[ConfigProblem]:
    try:
        _compiled(source)
    except ExpressionError as error:
        yield (field, str(error))
