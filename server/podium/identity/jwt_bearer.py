"""OIDC/JWT bearer tokens: signature checked against a JWKS (file or URL),
then issuer, audience and expiry (with leeway); the claims are mapped to a
principal: `sub` is the subject, one claim names the tenant, another the
roles (a list, or a space-separated string; values that are no role are
ignored), as Temporal's claim mapper does."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jwt

from podium.identity.errors import Unauthenticated
from podium.identity.jwt_settings import JwtSettings
from podium.identity.principal import Principal, Role

__all__ = ["ALGORITHMS", "JwtSettings", "JwtVerifier", "load_jwks_file"]

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"]


class JwtVerifier:
    def __init__(self, settings: JwtSettings) -> None:
        self.settings = settings
        self._url_client: jwt.PyJWKClient | None = None
        self._file_keys: jwt.PyJWKSet | None = None
        if settings.jwks.startswith(("http://", "https://")):
            self._url_client = jwt.PyJWKClient(settings.jwks, cache_keys=True, lifespan=300)
        else:
            self._file_keys = load_jwks_file(settings.jwks)

    async def verify(self, token: str) -> Principal:
        key = await self._key_for(token)
        settings = self.settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the JWT has expired", "JWT_EXPIRED") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the JWT is not for this audience", "JWT_AUDIENCE") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the JWT has another issuer", "JWT_ISSUER") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("the JWT's signature does not verify", "JWT_INVALID") from None
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"invalid JWT: {error}", "JWT_INVALID") from None
        return self._principal(claims)

    async def _key_for(self, token: str) -> jwt.PyJWK:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"invalid JWT: {error}", "JWT_INVALID") from None
        kid = header.get("kid")
        if self._url_client is not None:
            client = self._url_client
            try:
                # PyJWKClient fetches with urllib, blocking: not on the event loop.
                return await asyncio.to_thread(client.get_signing_key_from_jwt, token)
            except jwt.PyJWKClientError as error:
                raise Unauthenticated(f"no JWKS key for the JWT: {error}", "JWT_INVALID") from None
        assert self._file_keys is not None
        for key in self._file_keys.keys:
            if kid is None or key.key_id == kid:
                return key
        raise Unauthenticated("the JWT's key is not in the JWKS", "JWT_INVALID")

    def _principal(self, claims: dict[str, Any]) -> Principal:
        settings = self.settings
        tenant = claims.get(settings.tenant_claim, settings.default_tenant)
        if not isinstance(tenant, str) or not tenant:
            raise Unauthenticated(
                f"the JWT has no {settings.tenant_claim!r} claim", "JWT_NO_TENANT"
            )
        return Principal(f"jwt:{claims['sub']}", tenant, roles_of(claims.get(settings.roles_claim)))


def roles_of(value: Any) -> frozenset[Role]:
    names = value.split() if isinstance(value, str) else value
    if not isinstance(names, list):
        return frozenset()
    roles = set()
    for name in names:
        if isinstance(name, str):
            try:
                roles.add(Role.parse(name))
            except ValueError:
                continue  # a role of another application
    return frozenset(roles)


def load_jwks_file(path: str) -> jwt.PyJWKSet:
    """ValueError with the path when the file is missing or no JWKS."""
    try:
        data = json.loads(Path(path).read_text())
        return jwt.PyJWKSet.from_dict(data)
    except (OSError, ValueError, jwt.PyJWTError) as error:
        raise ValueError(f"JWKS {path}: {error}") from None
