"""The `flaky` agent: fails on purpose, reproducibly, to exercise retries."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

from podium.plugins.api import AgentError, Catalog, ConfigProblem, StepContext
from podium.plugins.builtin import config_schemas
from podium.plugins.builtin.settings import (
    as_int,
    check_delay,
    is_number,
    raise_if_invalid,
    sleep_delay,
    unknown_settings,
)

_SETTINGS = (
    "fail_attempts",
    "fail_probability",
    "error",
    "message",
    "retryable",
    "delay_ms",
    "seed",
)
DEFAULT_ERROR = "FlakyError"


class FlakyAgent:
    """Fails attempts 1..`fail_attempts` (default 1 when neither failure
    setting is given), and each attempt with probability `fail_probability`,
    drawn from a hash of (run, step, attempt, seed) so a rerun fails alike.
    Otherwise returns its input."""

    name = "flaky"
    description = (
        "Fails the first `fail_attempts` attempts (or with `fail_probability`, "
        "reproducibly) with AgentError code `error`, then returns its input."
    )
    version = "1"
    config_schema = config_schemas.FLAKY

    async def run(self, ctx: StepContext) -> Any:
        config = ctx.config
        raise_if_invalid(_problems(config))
        await sleep_delay(config)
        if should_fail(config, ctx.run_id, ctx.step_id, ctx.attempt):
            error = str(config.get("error", DEFAULT_ERROR))
            message = str(config.get("message", f"flaky failure on attempt {ctx.attempt}"))
            raise AgentError(message, code=error, retryable=bool(config.get("retryable", True)))
        return ctx.input

    def check_config(self, config: Mapping[str, Any], catalog: Catalog) -> list[ConfigProblem]:
        return list(_problems(config))


def should_fail(config: Mapping[str, Any], run_id: str, step_id: str, attempt: int) -> bool:
    probability = config.get("fail_probability")
    fail_attempts = as_int(config.get("fail_attempts", 0 if probability is not None else 1))
    if fail_attempts is not None and attempt <= fail_attempts:
        return True
    if probability is None:
        return False
    seed = config.get("seed", "")
    return draw(f"{run_id}\0{step_id}\0{attempt}\0{seed}") < float(probability)


def draw(key: str) -> float:
    """A number in [0, 1) determined by `key`."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _problems(config: Mapping[str, Any]) -> Iterator[ConfigProblem]:
    yield from unknown_settings(config, _SETTINGS)
    yield from check_delay(config)
    if "fail_attempts" in config:
        count = as_int(config["fail_attempts"])
        if count is None or count < 0:
            yield ("fail_attempts", "must be an integer >= 0")
    if "fail_probability" in config:
        probability = config["fail_probability"]
        if not is_number(probability) or not 0 <= probability <= 1:
            yield ("fail_probability", "must be a number between 0 and 1")
    for key in ("error", "message"):
        if key in config and not isinstance(config[key], str):
            yield (key, "must be a string")
    if "error" in config and isinstance(config["error"], str) and not config["error"].strip():
        yield ("error", "must not be empty")
    if "retryable" in config and not isinstance(config["retryable"], bool):
        yield ("retryable", "must be true or false")
    if "seed" in config and not isinstance(config["seed"], str | int):
        yield ("seed", "must be a string or an integer")
