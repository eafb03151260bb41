"""API tokens as values: the format, the hash, and why one is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podium.identity.errors import Unauthenticated
from podium.identity.principal import Role
from podium.identity.tokens import hash_secret, issue, token_id_of, verify

ROLES = frozenset({Role.VIEWER})


def test_a_token_verifies_to_its_principal_and_keeps_only_a_hash() -> None:
    token = issue("ci", "default", ROLES, now=100.0, creator="tokens/a")
    assert token.secret.startswith(f"pod_{token.record.id}_")
    assert token.record.secret_hash == hash_secret(token.secret)
    assert token.secret not in repr(token.record)
    principal = verify(token.record, token.secret, now=100.0)
    assert (principal.subject, principal.tenant, principal.roles) == (
        token.record.name,
        "default",
        ROLES,
    )


def test_revoked_expired_and_wrong_secrets_are_refused() -> None:
    token = issue("ci", "default", ROLES, now=100.0, creator="x", ttl_seconds=10)
    with pytest.raises(Unauthenticated) as expired:
        verify(token.record, token.secret, now=110.0)
    assert expired.value.reason == "TOKEN_EXPIRED"
    with pytest.raises(Unauthenticated) as revoked:
        verify(token.record.revoked(101.0), token.secret, now=102.0)
    assert revoked.value.reason == "TOKEN_REVOKED"
    with pytest.raises(Unauthenticated) as wrong:
        verify(token.record, token.secret + "x", now=101.0)
    assert wrong.value.reason == "TOKEN_INVALID"
    with pytest.raises(Unauthenticated) as unknown:
        verify(None, token.secret, now=101.0)
    assert unknown.value.reason == "TOKEN_INVALID"


@given(st.text(max_size=60))
def test_any_text_is_a_token_or_refused_as_malformed(text: str) -> None:
    bearer = "pod_" + text
    try:
        token_id = token_id_of(bearer)
    except Unauthenticated as error:
        assert error.reason == "TOKEN_MALFORMED"
    else:
        assert len(token_id) == 16 and bearer.startswith(f"pod_{token_id}_")


def test_role_names() -> None:
    assert Role.parse("admin") is Role.ADMIN
    assert Role.parse("ROLE_VIEWER") is Role.VIEWER
    with pytest.raises(ValueError, match="known: admin"):
        Role.parse("root")
