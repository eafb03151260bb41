"""What a governed LLM call is about: the scopes that quotas and budgets key on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from podium.core.model import DEFAULT_TENANT

__all__ = ["SCOPE_KINDS", "CallScopes", "Scope", "ScopeKind", "tenant_scope"]

ScopeKind = Literal["provider", "model", "agent", "workflow", "tenant"]
SCOPE_KINDS: frozenset[str] = frozenset(get_args(ScopeKind))


@dataclass(frozen=True, slots=True)
class Scope:
    """One thing a limit applies to, e.g. provider "openai" or model
    "openai/gpt-4o" (a model is always named with its provider, since two
    providers may serve models of the same name)."""

    kind: ScopeKind
    value: str

    def __post_init__(self) -> None:
        if self.kind not in SCOPE_KINDS:
            raise ValueError(f"scope kind must be one of {sorted(SCOPE_KINDS)}, got {self.kind!r}")
        if not self.value:
            raise ValueError(f"a {self.kind} scope needs a value")

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


@dataclass(frozen=True, slots=True)
class CallScopes:
    """One LLM call as governance sees it."""

    provider: str
    model: str
    agent: str
    workflow: str
    tenant: str = DEFAULT_TENANT

    @property
    def model_key(self) -> str:
        return f"{self.provider}/{self.model}"

    def scopes(self) -> tuple[Scope, ...]:
        """Every scope the call falls in; an empty field (a call outside any
        workflow, say) falls in no scope of that kind."""
        pairs: tuple[tuple[ScopeKind, str], ...] = (
            ("provider", self.provider),
            ("model", self.model_key if self.provider and self.model else ""),
            ("agent", self.agent),
            ("workflow", self.workflow),
            ("tenant", self.tenant),
        )
        return tuple(Scope(kind, value) for kind, value in pairs if value)


def tenant_scope(tenant: str) -> str:
    """The scope of a tenant's own quotas and budgets (`tenant:<t>`): they apply to
    that tenant's calls only. Every other scope is server-wide: it applies to the
    calls of every tenant (a `workflow:etl` budget counts each tenant's `etl`)."""
    return str(Scope("tenant", tenant))
