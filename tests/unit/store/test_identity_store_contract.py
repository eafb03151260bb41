"""The IdentityStore port (podium.identity.ports): API tokens (durable when
put returns, replaced by id, listed per tenant by creation) and the audit
trail (appended with the next commit, listed newest first, filtered and
paged). Every test runs against every backend of conftest.BACKENDS."""

from __future__ import annotations

from typing import Any

from podium.engine.ports import RunStore
from podium.identity.ports import AuditQuery, AuditRecord, IdentityStore
from podium.identity.principal import Role
from podium.identity.tokens import TokenRecord

from .conftest import StoreFactory, Stores


def token(
    token_id: str, tenant: str = "acme", create_time: float = 100.0, **fields: Any
) -> TokenRecord:
    values: dict[str, Any] = {
        "id": token_id,
        "display_name": f"token {token_id}",
        "tenant": tenant,
        "roles": frozenset({Role.DEVELOPER, Role.VIEWER}),
        "secret_hash": "sha256:" + "ab" * 32,
        "create_time": create_time,
        "creator": "admin@acme",
    }
    values.update(fields)
    return TokenRecord(**values)


def audit(number: int, tenant: str = "acme", **fields: Any) -> AuditRecord:
    values: dict[str, Any] = {
        "time": 1000.0 + number,
        "subject": "alice",
        "tenant": tenant,
        "method": "/podium.v1.WorkflowService/CreateWorkflow",
        "resource": f"workflows/w{number}",
        "request_id": f"req-{number}",
        "code": "OK",
        "request": {"workflow": {"id": f"w{number}"}, "n": number},
        "after": {"version": number},
        "before": None,
    }
    values.update(fields)
    return AuditRecord(**values)


def without_id(record: AuditRecord) -> AuditRecord:
    return AuditRecord(**{**record.__dict__, "id": 0})


async def test_an_unknown_token_is_none(identity_store: IdentityStore) -> None:
    assert await identity_store.get_token("nope") is None


async def test_a_token_round_trips_every_field(identity_store: IdentityStore) -> None:
    stored = token("t1", expire_time=5000.5, revoke_time=4000.25, roles=frozenset(Role))
    await identity_store.put_token(stored)

    assert await identity_store.get_token("t1") == stored


async def test_putting_a_token_again_replaces_it(identity_store: IdentityStore) -> None:
    await identity_store.put_token(token("t1"))
    revoked = token("t1", revoke_time=123.0)
    await identity_store.put_token(revoked)

    assert await identity_store.get_token("t1") == revoked
    assert await identity_store.list_tokens("acme") == [revoked]


async def test_tokens_are_listed_per_tenant_by_creation(identity_store: IdentityStore) -> None:
    await identity_store.put_token(token("b", create_time=3.0))
    await identity_store.put_token(token("a", create_time=2.0))
    await identity_store.put_token(token("c", create_time=2.0))
    await identity_store.put_token(token("other", tenant="globex", create_time=1.0))

    assert [t.id for t in await identity_store.list_tokens("acme")] == ["a", "c", "b"]
    assert [t.id for t in await identity_store.list_tokens("globex")] == ["other"]
    assert await identity_store.list_tokens("nobody") == []


async def test_a_token_is_durable_when_put_returns(backend: StoreFactory, tmp_path: Any) -> None:
    async with backend(tmp_path) as first:
        if not first.shared:
            return  # nothing else can reach a private database
        await first.identity.put_token(token("t1"))
        async with backend(tmp_path) as second:
            assert await second.identity.get_token("t1") == token("t1")


async def test_audit_records_ride_the_next_commit_and_list_newest_first(
    stores: Stores,
) -> None:
    for number in range(1, 4):
        stores.identity.append_audit(audit(number))
    await stores.runs.commit()

    listed = await stores.identity.list_audit(AuditQuery(tenant="acme"))

    assert [without_id(r) for r in listed] == [audit(3), audit(2), audit(1)]
    ids = [r.id for r in listed]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3 and min(ids) > 0


async def test_audit_is_listed_per_tenant_and_filtered(
    identity_store: IdentityStore, run_store: RunStore
) -> None:
    identity_store.append_audit(audit(1))
    identity_store.append_audit(audit(2, subject="bob"))
    identity_store.append_audit(audit(3, method="/podium.v1.ExecutionService/StartRun"))
    identity_store.append_audit(audit(4, tenant="globex"))
    await run_store.commit()

    async def numbers(**query: Any) -> list[int]:
        records = await identity_store.list_audit(AuditQuery(**{"tenant": "acme", **query}))
        return [int(r.request["n"]) for r in records]

    assert await numbers() == [3, 2, 1]
    assert await numbers(tenant="globex") == [4]
    assert await numbers(subject="bob") == [2]
    # A method by its full name or by its last part.
    assert await numbers(method="StartRun") == [3]
    assert await numbers(method="/podium.v1.ExecutionService/StartRun") == [3]
    assert await numbers(resource="workflows/w1") == [1]
    assert await numbers(start_time=1002.0) == [3, 2]
    assert await numbers(end_time=1002.0) == [1]
    assert await numbers(start_time=1002.0, end_time=1003.0) == [2]


async def test_audit_pages_by_id(identity_store: IdentityStore, run_store: RunStore) -> None:
    for number in range(1, 8):
        identity_store.append_audit(audit(number))
    await run_store.commit()

    seen: list[int] = []
    before = 0
    while True:
        page = await identity_store.list_audit(AuditQuery(tenant="acme", before_id=before, limit=3))
        if not page:
            break
        seen += [int(r.request["n"]) for r in page]
        before = page[-1].id

    assert seen == [7, 6, 5, 4, 3, 2, 1]
