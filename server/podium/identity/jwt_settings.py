"""What `podium serve --jwks ...` configures: where the keys are and how claims map.

Apart from the verifier (jwt_bearer), which needs PyJWT and cryptography:
a server without JWT settings never imports them.
"""

from __future__ import annotations

from dataclasses import dataclass

from podium.identity.principal import DEFAULT_TENANT

__all__ = ["JwtSettings"]


@dataclass(frozen=True)
class JwtSettings:
    # A path to a JWKS file, or an http(s) URL serving one.
    jwks: str
    issuer: str
    audience: str
    leeway_seconds: float = 30.0
    tenant_claim: str = "tenant"
    roles_claim: str = "roles"
    # The tenant of a token without the tenant claim; None refuses such tokens.
    default_tenant: str | None = DEFAULT_TENANT
