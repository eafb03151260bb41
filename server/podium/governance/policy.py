"""The governance policy: quotas, budgets, breaker settings and prices, as
read from `podium serve --policy FILE` (YAML) and as changed at runtime
through ControlService. One model validates both, so a bad file and a bad
RPC are rejected with the same field names and reasons.
"""

from __future__ import annotations

import zoneinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from podium.governance.windows import WINDOWS

ScopeKind = Literal["server", "provider", "model", "agent", "workflow", "tenant"]
AlertKind = Literal[
    "budget_threshold", "breaker_opened", "breaker_closed", "quota_wait", "budget_wait"
]
ALERT_KINDS: tuple[AlertKind, ...] = (
    "budget_threshold",
    "breaker_opened",
    "breaker_closed",
    "quota_wait",
    "budget_wait",
)
Dimension = Literal["requests", "input_tokens", "output_tokens", "tokens", "concurrency"]
Period = Literal["none", "day", "month"]


class PolicyError(ValueError):
    """A policy that cannot be used; `field` names what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def parse_scope(text: str) -> tuple[ScopeKind, str]:
    """ "server", "provider:openai", "model:openai/gpt-4o", "agent:llm", ..."""
    kind, _, value = text.partition(":")
    if kind == "server":
        if value:
            raise ValueError("the server scope takes no value")
        return "server", ""
    if kind not in ("provider", "model", "agent", "workflow", "tenant"):
        raise ValueError(
            f"unknown scope {kind!r}: use server, provider:<name>, model:<provider>/<model>, "
            "agent:<name>, workflow:<id> or tenant:<name>"
        )
    if not value:
        raise ValueError(f"scope {kind!r} needs a value, as in {kind}:<name>")
    if kind == "model" and "/" not in value:
        raise ValueError("a model scope is model:<provider>/<model>")
    return kind, value  # type: ignore[return-value]


RESERVED_QUOTA_PREFIX = "run_concurrency:"


class QuotaPolicy(_Strict):
    name: str = Field(min_length=1, max_length=100)
    scope: str
    dimension: Dimension
    # Per `window` for rates; at once for concurrency.
    limit: float = Field(gt=0)
    burst: float = Field(default=0, ge=0)
    # The rate's window: second, minute (the default), hour, day, or a number of seconds.
    window: float = Field(default=60.0, gt=0, le=31 * 86400)

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> Any:
        if isinstance(value, str) and value in WINDOWS:
            return WINDOWS[value]
        if isinstance(value, str):
            raise ValueError(f"a window is one of {', '.join(WINDOWS)} or a number of seconds")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        # The shared leases of a run_concurrency key (cluster mode) sit beside
        # quotas' under this prefix: a quota of that name would share their count.
        if value.startswith(RESERVED_QUOTA_PREFIX):
            raise ValueError(f"a quota's name must not begin with {RESERVED_QUOTA_PREFIX!r}")
        return value

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        kind, _ = parse_scope(value)
        if kind == "server":
            raise ValueError("quotas apply to a provider, model, agent, workflow or tenant")
        return value

    @model_validator(mode="after")
    def _fits(self) -> QuotaPolicy:
        kind, _ = parse_scope(self.scope)
        if self.dimension == "concurrency" and self.limit != int(self.limit):
            raise ValueError("a concurrency limit is a whole number")
        if kind == "workflow" and self.dimension != "concurrency":
            raise ValueError("a workflow quota limits its running runs: dimension concurrency")
        if self.burst and self.dimension != "concurrency" and self.burst < 1:
            raise ValueError("burst must be at least 1")
        return self


class BudgetPolicy(_Strict):
    name: str = Field(min_length=1, max_length=100)
    scope: str
    limit: Decimal = Field(ge=0)
    period: Period = "none"
    time_zone: str = "UTC"
    warn_fraction: float = Field(default=0.8, gt=0, le=1)

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        kind, _ = parse_scope(value)
        if kind == "model":
            raise ValueError(
                "budgets apply to the server, a provider, an agent, a workflow or a tenant"
            )
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (
            zoneinfo.ZoneInfoNotFoundError,
            ValueError,
            OSError,
        ):  # OSError: a name too long for a file
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class BreakerPolicy(_Strict):
    failure_threshold: int | None = Field(default=5, ge=1)
    failure_rate: float | None = Field(default=None, gt=0, le=1)
    window: float = Field(default=60.0, gt=0)
    min_calls: int = Field(default=10, ge=1)
    cooldown: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _one_mode(self) -> BreakerPolicy:
        if self.failure_threshold is None and self.failure_rate is None:
            raise ValueError("give failure_threshold or failure_rate")
        return self


class BreakersPolicy(_Strict):
    defaults: BreakerPolicy = Field(default_factory=BreakerPolicy)
    # By breaker name: "provider:<p>", "model:<p>/<m>", "agent:<a>".
    overrides: dict[str, BreakerPolicy] = Field(default_factory=dict)

    @field_validator("overrides")
    @classmethod
    def _names(cls, value: dict[str, BreakerPolicy]) -> dict[str, BreakerPolicy]:
        for name in value:
            kind, _ = parse_scope(name)
            if kind not in ("provider", "model", "agent"):
                raise ValueError(f"{name!r}: breakers exist per provider, model and agent")
        return value


class PricePolicy(_Strict):
    """USD per million tokens."""

    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)
    cached_input: Decimal | None = Field(default=None, ge=0)
    cache_write: Decimal | None = Field(default=None, ge=0)
    reasoning: Decimal | None = Field(default=None, ge=0)


class AlertsPolicy(_Strict):
    """Where and when governance alerts go (podium.governance.alerts)."""

    # Where alerts are POSTed, signed; none: alerts are metrics and log lines only.
    url: str = ""
    # The server secret (`podium serve --secret NAME=...`) whose value signs them.
    secret: str = Field(default="", validate_default=True)
    kinds: list[AlertKind] = Field(default_factory=lambda: list(ALERT_KINDS), min_length=1)
    # Fractions of a budget's limit whose crossing by settled spend alerts; none: the
    # budget's warn_fraction and 1 (exhausted).
    budget_thresholds: list[float] | None = Field(default=None, min_length=1)
    # Seconds a call waits for a quota or a budget before its wait alerts.
    wait_after: float = Field(default=60.0, gt=0, le=86400)
    # Seconds between two alerts of one kind and subject (the later ones are dropped).
    min_interval: float = Field(default=300.0, ge=0, le=7 * 86400)
    # Alerts waiting for delivery at most; the oldest is dropped beyond it.
    queue_size: int = Field(default=1000, ge=1, le=100_000)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("an alerts url is an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError("credentials in the URL are not allowed (alerts are signed)")
        return value

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, value: list[AlertKind]) -> list[AlertKind]:
        if len(set(value)) != len(value):
            raise ValueError("each kind once")
        return value

    @field_validator("budget_thresholds")
    @classmethod
    def _thresholds(cls, value: list[float] | None) -> list[float] | None:
        if value is not None:
            for fraction in value:
                if not 0 < fraction <= 1:
                    raise ValueError(f"a threshold is a fraction in (0, 1], got {fraction:g}")
            if len(set(value)) != len(value):
                raise ValueError("each threshold once")
        return value

    @field_validator("secret", mode="after")
    @classmethod
    def _signed(cls, value: str, info: ValidationInfo) -> str:
        # Validated after `url` (field order), so the url is known here.
        if info.data.get("url") and not value:
            raise ValueError(
                "alerts to a url are signed: name a server secret "
                "(podium serve --secret NAME=env:VAR)"
            )
        return value


class Policy(_Strict):
    quotas: list[QuotaPolicy] = Field(default_factory=list)
    budgets: list[BudgetPolicy] = Field(default_factory=list)
    breakers: BreakersPolicy = Field(default_factory=BreakersPolicy)
    prices: list[PricePolicy] = Field(default_factory=list)
    # Provider settings by provider name (API key, base URL, organisation,
    # timeouts, per-model options), handed to the provider's `configure`.
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    alerts: AlertsPolicy | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> Policy:
        for kind, items in (("quotas", self.quotas), ("budgets", self.budgets)):
            seen: set[str] = set()
            for item in items:
                if item.name in seen:
                    raise ValueError(f"{kind}: duplicate name {item.name!r}")
                seen.add(item.name)
        return self


def field_of(error: ValidationError, prefix: str = "") -> PolicyError:
    """The first problem of a validation error, as a field path and a reason."""
    first = error.errors()[0]
    parts: list[str] = []
    for part in first["loc"]:
        if isinstance(part, int):
            parts[-1 if parts else 0 : None] = [f"{parts[-1] if parts else ''}[{part}]"]
        else:
            parts.append(str(part))
    path = ".".join(p for p in [prefix, *parts] if p)
    reason = first["msg"].removeprefix("Value error, ")
    return PolicyError(path, reason)


def load_policy(path: str | Path) -> Policy:
    """Reads a policy file, or raises PolicyError naming the field."""
    # The client distribution's loader, imported here: `podium.client` is not otherwise needed
    # by a server, and only a server started with --policy reads a file.
    import yaml  # only a server started with --policy pays for it

    from podium.client import yaml12

    try:
        # YAML 1.2, as for workflow files: `yes`/`no`/`on`/`off` stay strings.
        data = yaml12.load(Path(path).read_text()) or {}
    except OSError as error:
        raise PolicyError("", f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise PolicyError("", f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise PolicyError(
            "", f"{path} must hold a mapping with quotas, budgets, breakers, prices, alerts"
        )
    for kind in ("quotas", "budgets"):
        seen: set[object] = set()
        for index, item in enumerate(data.get(kind) or []):
            name = item.get("name") if isinstance(item, dict) else None
            if name is not None and name in seen:
                raise PolicyError(f"{kind}[{index}].name", f"duplicate name {name!r}")
            seen.add(name)
    try:
        return Policy.model_validate(data)
    except ValidationError as error:
        raise field_of(error) from None
