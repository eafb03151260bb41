"""API tokens of a server: created, listed, revoked, verified. Verified
records are cached; a revocation through this catalog updates the cache and
the store together, so a revoked token is refused from the next call on."""

from __future__ import annotations

from podium.core.clock import Clock
from podium.core.errors import InvalidArgument, NotFound
from podium.identity.ports import IdentityStore
from podium.identity.principal import TENANT_NAME, TENANT_NAME_RULE, Principal, Role
from podium.identity.tokens import NewToken, TokenRecord, issue, token_id_of, verify

MAX_DISPLAY_NAME = 200


class TokenCatalog:
    def __init__(self, store: IdentityStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._cache: dict[str, TokenRecord] = {}

    async def authenticate(self, bearer: str) -> Principal:
        token_id = token_id_of(bearer)
        record = self._cache.get(token_id)
        if record is None:
            record = await self._store.get_token(token_id)
            if record is not None:
                self._cache[token_id] = record
        return verify(record, bearer, self._clock.now())

    async def create(
        self,
        display_name: str,
        tenant: str,
        roles: frozenset[Role],
        *,
        creator: str,
        ttl_seconds: float | None = None,
    ) -> NewToken:
        check_new_token(display_name, tenant, roles, ttl_seconds)
        token = issue(
            display_name,
            tenant,
            roles,
            now=self._clock.now(),
            creator=creator,
            ttl_seconds=ttl_seconds,
        )
        await self._store.put_token(token.record)
        return token

    async def list(self, tenant: str, *, show_revoked: bool = False) -> list[TokenRecord]:
        records = await self._store.list_tokens(tenant)
        return [r for r in records if show_revoked or r.revoke_time is None]

    async def revoke(self, name: str, tenant: str) -> TokenRecord:
        token_id = name.removeprefix("tokens/")
        record = await self._store.get_token(token_id) if name.startswith("tokens/") else None
        if record is None or record.tenant != tenant:
            raise NotFound(f"no token {name!r}", reason="TOKEN_NOT_FOUND")
        if record.revoke_time is None:
            record = record.revoked(self._clock.now())
            await self._store.put_token(record)
        self._cache[token_id] = record
        return record


def check_new_token(
    display_name: str, tenant: str, roles: frozenset[Role], ttl_seconds: float | None
) -> None:
    """InvalidArgument naming the field, before anything is stored."""
    from podium.core.errors import FieldViolation

    violations = []
    if len(display_name) > MAX_DISPLAY_NAME:
        violations.append(FieldViolation("display_name", f"at most {MAX_DISPLAY_NAME} characters"))
    if not TENANT_NAME.match(tenant):
        violations.append(FieldViolation("tenant", TENANT_NAME_RULE))
    if not roles:
        violations.append(FieldViolation("roles", "must name at least one role"))
    if ttl_seconds is not None and ttl_seconds <= 0:
        violations.append(FieldViolation("ttl", "must be positive"))
    if violations:
        text = "; ".join(f"{v.field}: {v.description}" for v in violations)
        raise InvalidArgument(text, violations)
