"""API tokens through a real server: shown once, stored as a hash, refused
at once when revoked, refused once expired; for any tenant an admin names."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2

from podium.core.clock import ManualClock
from podium.identity.principal import Role
from podium.server.security import SecurityConfig
from podium.testing import error_info, field_violations, serving
from podium.testing.identity import new_token, stubs_for
from podium.v1 import identity_service_pb2 as ids
from podium.v1 import workflow_service_pb2

AUTH = SecurityConfig(auth=True)
LIST = workflow_service_pb2.ListWorkflowsRequest()


async def test_a_revoked_token_is_refused_from_the_next_call_on(tmp_path: Path) -> None:
    async with serving(str(tmp_path / "p.db"), security=AUTH) as served:
        admin = await new_token(served.server, Role.ADMIN)
        async with stubs_for(served.address, admin) as as_admin:
            created = await as_admin.identity.CreateToken(
                ids.CreateTokenRequest(display_name="ci", roles=[ids.ROLE_VIEWER])
            )
            async with stubs_for(served.address, created.secret) as as_viewer:
                await as_viewer.workflows.ListWorkflows(LIST)
                await as_admin.identity.RevokeToken(ids.RevokeTokenRequest(name=created.token.name))
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await as_viewer.workflows.ListWorkflows(LIST)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert error_info(refused.value).reason == "TOKEN_REVOKED"
            listed = await as_admin.identity.ListTokens(ids.ListTokensRequest())
            assert created.token.name not in {t.name for t in listed.tokens}
            every = await as_admin.identity.ListTokens(ids.ListTokensRequest(show_revoked=True))
            revoked = next(t for t in every.tokens if t.name == created.token.name)
            assert revoked.HasField("revoke_time")


async def test_a_revocation_survives_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "p.db")
    async with serving(db, security=AUTH) as served:
        admin = await new_token(served.server, Role.ADMIN)
        viewer = await new_token(served.server, Role.VIEWER)
        async with stubs_for(served.address, admin) as as_admin:
            name = f"tokens/{viewer.split('_')[1]}"
            await as_admin.identity.RevokeToken(ids.RevokeTokenRequest(name=name))
    async with serving(db, security=AUTH) as served:
        async with stubs_for(served.address, viewer) as as_viewer:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await as_viewer.workflows.ListWorkflows(LIST)
        assert error_info(refused.value).reason == "TOKEN_REVOKED"
        async with stubs_for(served.address, admin) as as_admin:
            await as_admin.workflows.ListWorkflows(LIST)


async def test_a_token_expires_after_its_ttl(tmp_path: Path) -> None:
    clock = ManualClock()
    async with serving(str(tmp_path / "p.db"), security=AUTH, clock=clock) as served:
        admin = await new_token(served.server, Role.ADMIN)
        async with stubs_for(served.address, admin) as as_admin:
            request = ids.CreateTokenRequest(
                display_name="short",
                roles=[ids.ROLE_DEVELOPER],
                ttl=duration_pb2.Duration(seconds=60),
            )
            created = await as_admin.identity.CreateToken(request)
        async with stubs_for(served.address, created.secret) as as_developer:
            await as_developer.workflows.ListWorkflows(LIST)
            clock.advance(59)
            await as_developer.workflows.ListWorkflows(LIST)
            clock.advance(1)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await as_developer.workflows.ListWorkflows(LIST)
        assert error_info(refused.value).reason == "TOKEN_EXPIRED"


async def test_the_secret_is_shown_once_and_stored_only_as_a_hash(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    async with serving(str(db), security=AUTH) as served:
        admin = await new_token(served.server, Role.ADMIN)
        async with stubs_for(served.address, admin) as as_admin:
            created = await as_admin.identity.CreateToken(
                ids.CreateTokenRequest(display_name="x", roles=[ids.ROLE_VIEWER])
            )
            listed = await as_admin.identity.ListTokens(ids.ListTokensRequest())
        assert created.secret.startswith(f"pod_{created.token.name.removeprefix('tokens/')}_")
        assert created.secret not in str(listed)
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("p.db"))
    for secret in (admin, created.secret):
        assert secret.encode() not in stored
        assert secret[len("pod_") + 17 :].encode() not in stored  # the random part
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM api_tokens").fetchone() == (2,)


async def test_bad_token_requests_are_invalid_argument_and_store_nothing(tmp_path: Path) -> None:
    async with serving(str(tmp_path / "p.db"), security=AUTH) as served:
        admin = await new_token(served.server, Role.ADMIN)
        async with stubs_for(served.address, admin) as as_admin:
            for request, field in [
                (ids.CreateTokenRequest(display_name="x"), "roles"),
                (ids.CreateTokenRequest(roles=[ids.ROLE_VIEWER], tenant="a b"), "tenant"),
                (ids.CreateTokenRequest(roles=[ids.ROLE_VIEWER], tenant="t" * 64), "tenant"),
                (ids.CreateTokenRequest(roles=[ids.Role.ValueType(99)]), "roles"),
                (
                    ids.CreateTokenRequest(
                        roles=[ids.ROLE_VIEWER], ttl=duration_pb2.Duration(seconds=-1)
                    ),
                    "ttl",
                ),
                (
                    ids.CreateTokenRequest(roles=[ids.ROLE_VIEWER], display_name="n" * 201),
                    "display_name",
                ),
            ]:
                with pytest.raises(grpc.aio.AioRpcError) as bad:
                    await as_admin.identity.CreateToken(request)
                assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert field in {f for f, _ in field_violations(bad.value)}
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await as_admin.identity.RevokeToken(ids.RevokeTokenRequest(name="tokens/nope"))
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
            listed = await as_admin.identity.ListTokens(ids.ListTokensRequest(show_revoked=True))
            assert len(listed.tokens) == 1  # the admin's own
