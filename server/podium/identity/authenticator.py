"""From what a call carries to its principal: a bearer API token or JWT in
the `authorization` metadata, else the client certificate of an mTLS
connection. With authentication off every caller is ANONYMOUS (an admin of
the default tenant): the server allows that on loopback addresses only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from podium.identity.certificates import principal_of_certificate
from podium.identity.errors import PermissionDenied, Unauthenticated
from podium.identity.principal import ANONYMOUS, Principal
from podium.identity.token_catalog import TokenCatalog
from podium.identity.tokens import is_api_token

if TYPE_CHECKING:
    # Only a type here: PyJWT is imported by servers that verify JWTs, not by all.
    from podium.identity.jwt_bearer import JwtVerifier

BEARER = "bearer "


@dataclass(frozen=True)
class Credentials:
    """What one call presented."""

    authorization: str | None
    # PEM of the verified client certificate, on an mTLS connection.
    certificate: bytes | None = None


class Authenticator:
    def __init__(
        self,
        tokens: TokenCatalog,
        *,
        enabled: bool,
        jwt: JwtVerifier | None = None,
        certificates: bool = False,
    ) -> None:
        self.tokens = tokens
        self.enabled = enabled
        self._jwt = jwt
        self._certificates = certificates

    async def authenticate(self, credentials: Credentials) -> Principal:
        if not self.enabled:
            return ANONYMOUS
        if credentials.authorization is not None:
            bearer = _bearer(credentials.authorization)
            if is_api_token(bearer):
                principal = await self.tokens.authenticate(bearer)
            elif self._jwt is not None:
                principal = await self._jwt.verify(bearer)
            else:
                raise Unauthenticated("unknown bearer token", "TOKEN_INVALID")
        elif self._certificates and credentials.certificate is not None:
            principal = principal_of_certificate(credentials.certificate)
        else:
            raise Unauthenticated(
                "this server needs credentials: `authorization: Bearer <token>`",
                "CREDENTIALS_MISSING",
            )
        if not principal.roles:
            raise PermissionDenied(f"{principal.subject} holds no role", "NO_ROLE")
        return principal


def _bearer(authorization: str) -> str:
    if authorization[: len(BEARER)].lower() != BEARER or not authorization[len(BEARER) :].strip():
        raise Unauthenticated(
            "the authorization metadata must be `Bearer <token>`", "CREDENTIALS_MALFORMED"
        )
    return authorization[len(BEARER) :].strip()
