"""API tokens: `pod_<id>_<secret>`. The id (public, 16 hex digits) finds the
stored record; the secret (256 random bits) is shown once, at creation, and
stored only as its SHA-256 hash. A high-entropy secret needs no slow hash:
nobody can guess one from its SHA-256 faster than by brute force over 2^256."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace

from podium.identity.errors import Unauthenticated
from podium.identity.principal import Principal, Role

PREFIX = "pod_"
_ID_BYTES = 8
_SECRET_BYTES = 32


@dataclass(frozen=True)
class TokenRecord:
    """What the server keeps of a token (never its secret)."""

    id: str
    display_name: str
    tenant: str
    roles: frozenset[Role]
    secret_hash: str
    create_time: float
    creator: str
    expire_time: float | None = None
    revoke_time: float | None = None

    @property
    def name(self) -> str:
        return f"tokens/{self.id}"

    def revoked(self, now: float) -> TokenRecord:
        return replace(self, revoke_time=now)

    def principal(self) -> Principal:
        return Principal(self.name, self.tenant, self.roles)


@dataclass(frozen=True)
class NewToken:
    record: TokenRecord
    # `pod_<id>_<secret>`: what the caller sends; never stored.
    secret: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(
    display_name: str,
    tenant: str,
    roles: frozenset[Role],
    *,
    now: float,
    creator: str,
    ttl_seconds: float | None = None,
) -> NewToken:
    token_id = secrets.token_hex(_ID_BYTES)
    secret = f"{PREFIX}{token_id}_{secrets.token_urlsafe(_SECRET_BYTES)}"
    record = TokenRecord(
        id=token_id,
        display_name=display_name,
        tenant=tenant,
        roles=roles,
        secret_hash=hash_secret(secret),
        create_time=now,
        creator=creator,
        expire_time=None if ttl_seconds is None else now + ttl_seconds,
    )
    return NewToken(record, secret)


def is_api_token(bearer: str) -> bool:
    return bearer.startswith(PREFIX)


def token_id_of(bearer: str) -> str:
    """The id part of `pod_<id>_<secret>`; Unauthenticated when malformed."""
    body = bearer[len(PREFIX) :]
    token_id, separator, rest = body.partition("_")
    if not separator or not rest or len(token_id) != 2 * _ID_BYTES:
        raise Unauthenticated("malformed API token", "TOKEN_MALFORMED")
    return token_id


def verify(record: TokenRecord | None, bearer: str, now: float) -> Principal:
    """The token's principal, or Unauthenticated saying why not. Unknown and
    wrong secrets read the same, so a caller learns nothing about ids."""
    if record is None or not hmac.compare_digest(record.secret_hash, hash_secret(bearer)):
        raise Unauthenticated("unknown API token", "TOKEN_INVALID")
    if record.revoke_time is not None:
        raise Unauthenticated(f"API token {record.name} was revoked", "TOKEN_REVOKED")
    if record.expire_time is not None and now >= record.expire_time:
        raise Unauthenticated(f"API token {record.name} has expired", "TOKEN_EXPIRED")
    return record.principal()
