"""The `llm` agent: renders a prompt from the step input and asks a provider,
through the governed gateway, for a completion."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from podium.core.expressions import ExpressionError
from podium.core.failures import INVALID_INPUT
from podium.core.jsonvalues import from_json_numbers
from podium.core.templates import compile_template
from podium.plugins.api import (
    AgentError,
    BudgetThreshold,
    Catalog,
    CompletionRequest,
    ConfigProblem,
    Message,
    StepContext,
    Target,
)
from podium.plugins.builtin import config_schemas
from podium.plugins.builtin.settings import as_int, is_number, raise_if_invalid, unknown_settings
from podium.plugins.builtin.structured import (
    parse_answer,
    response_format,
    response_format_problems,
)

_SETTINGS = (
    "provider",
    "model",
    "prompt",
    "system",
    "max_tokens",
    "temperature",
    "options",
    "fallbacks",
    "stream",
    "response_format",
)
DEFAULT_PROVIDER = "simulated"
DEFAULT_MODEL = "sim-small"
DEFAULT_MAX_TOKENS = 512


class LlmAgent:
    """Config: provider, model, prompt and system (templates with
    `{{ CEL }}` placeholders over `input`; without `prompt`, the input's
    `prompt` string is sent as is), max_tokens, temperature, options (passed
    to the provider), response_format (structured output: the step's output
    is then the parsed JSON answer, checked against its schema)."""

    name = "llm"
    description = "Sends a prompt rendered from the step input to an LLM provider."
    version = "1"
    config_schema = config_schemas.LLM

    async def run(self, ctx: StepContext) -> Any:
        config = ctx.config
        raise_if_invalid(_problems(config))
        provider = str(config.get("provider", DEFAULT_PROVIDER))
        messages = render_messages(config, ctx.input)
        temperature = config.get("temperature")
        structured = response_format(config)
        request = CompletionRequest(
            model=str(config.get("model", DEFAULT_MODEL)),
            messages=messages,
            max_tokens=as_int(config.get("max_tokens", DEFAULT_MAX_TOKENS)),
            temperature=float(temperature) if temperature is not None else None,
            options=dict(config.get("options") or {}),
            stream=bool(config.get("stream", False)),
            response_format=structured,
        )
        result = await ctx.llm.complete(provider, request, fallbacks=fallback_targets(config))
        completion = result.completion
        if structured is not None:
            return parse_answer(completion.text, structured)
        return {
            "text": completion.text,
            "model": result.model,
            "provider": result.provider,
            "finish_reason": completion.finish_reason,
            "usage": {
                "input_tokens": completion.usage.input_tokens,
                "output_tokens": completion.usage.output_tokens,
            },
            "cost": str(result.cost),
        }

    def check_config(self, config: Mapping[str, Any], catalog: Catalog) -> list[ConfigProblem]:
        return [*_problems(config), *catalog_problems(config, catalog)]


def fallback_targets(config: Mapping[str, Any]) -> list[Target]:
    targets = []
    for entry in config.get("fallbacks") or ():
        threshold = entry.get("when_budget_above")
        targets.append(
            Target(
                entry["provider"],
                entry["model"],
                BudgetThreshold(threshold["budget"], float(threshold["fraction"]))
                if threshold
                else None,
            )
        )
    return targets


def catalog_problems(config: Mapping[str, Any], catalog: Catalog) -> list[ConfigProblem]:
    """Problems of the `provider` and `fallbacks` settings: unknown providers,
    malformed targets."""
    problems: list[ConfigProblem] = []
    provider = config.get("provider", DEFAULT_PROVIDER)
    known = ", ".join(sorted(catalog.provider_names)) or "none"
    if isinstance(provider, str) and provider not in catalog.provider_names:
        problems.append(("provider", f"unknown provider {provider!r}; known: {known}"))
    fallbacks = config.get("fallbacks", [])
    if not isinstance(fallbacks, list):
        problems.append(("fallbacks", "a list of {provider, model}"))
        return problems
    for i, target in enumerate(fallbacks):
        if (
            not isinstance(target, Mapping)
            or not {"provider", "model"} <= set(target)
            or (set(target) - {"provider", "model", "when_budget_above"})
        ):
            problems.append(
                (f"fallbacks[{i}]", "needs provider and model (and optionally when_budget_above)")
            )
        elif target["provider"] not in catalog.provider_names:
            problems.append(
                (
                    f"fallbacks[{i}].provider",
                    f"unknown provider {target['provider']!r}; known: {known}",
                )
            )
    return problems


def render_messages(config: Mapping[str, Any], step_input: Any) -> list[Message]:
    """The system message (if `system` is set) and the user prompt, rendered
    over the step input; raises AgentError (podium.InvalidInput) if they
    cannot be rendered."""
    variables = {"input": from_json_numbers(step_input)}
    messages = []
    try:
        if "system" in config:
            messages.append(Message("system", compile_template(config["system"]).render(variables)))
        if "prompt" in config:
            prompt = compile_template(config["prompt"]).render(variables)
        else:
            prompt = _prompt_from_input(step_input)
    except ExpressionError as error:
        message = f"cannot render the prompt: {error}"
        raise AgentError(message, code=INVALID_INPUT, retryable=False) from None
    messages.append(Message("user", prompt))
    return messages


def _prompt_from_input(step_input: Any) -> str:
    prompt = step_input.get("prompt") if isinstance(step_input, Mapping) else None
    if not isinstance(prompt, str):
        raise AgentError(
            "no `prompt` in the step config, and the input has no `prompt` string",
            code=INVALID_INPUT,
            retryable=False,
        )
    return prompt


def _problems(config: Mapping[str, Any]) -> Iterator[ConfigProblem]:
    yield from unknown_settings(config, _SETTINGS)
    yield from setting_problems(config)


def setting_problems(config: Mapping[str, Any]) -> Iterator[ConfigProblem]:
    """Problems of the settings the llm agent shares with others (provider,
    model, prompt, system, max_tokens, temperature, options), without
    looking at the catalog."""
    for key in ("provider", "model"):
        value = config.get(key)
        if key in config and (not isinstance(value, str) or not value.strip()):
            yield (key, "must be a non-empty string")
    for key in ("prompt", "system"):
        if key not in config:
            continue
        if not isinstance(config[key], str):
            yield (key, "must be a string")
            continue
        try:
            compile_template(config[key])
        except ExpressionError as error:
            yield (key, str(error))
    if "max_tokens" in config:
        max_tokens = as_int(config["max_tokens"])
        if max_tokens is None or max_tokens <= 0:
            yield ("max_tokens", "must be an integer > 0")
    temperature = config.get("temperature")
    if temperature is not None and (not is_number(temperature) or temperature < 0):
        yield ("temperature", "must be a number >= 0")
    if "stream" in config and not isinstance(config["stream"], bool):
        yield ("stream", "must be true or false")
    if config.get("options") is not None and not isinstance(config["options"], Mapping):
        yield ("options", "must be a mapping")
    yield from response_format_problems(config)
