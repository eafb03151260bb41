"""IdentityService: translation only (tokens, the caller, the audit trail)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from podium.core.errors import FieldViolation, InvalidArgument
from podium.identity.ports import AuditQuery, AuditRecord, IdentityStore
from podium.identity.principal import Role
from podium.identity.token_catalog import TokenCatalog
from podium.identity.tokens import TokenRecord
from podium.server import translate
from podium.server.caller import current_caller
from podium.server.status import invalid, unary
from podium.v1 import identity_service_pb2, identity_service_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


class IdentityService(identity_service_pb2_grpc.IdentityServiceServicer):
    def __init__(self, tokens: TokenCatalog, store: IdentityStore, flush: Any) -> None:
        self._tokens = tokens
        self._store = store
        # Awaited before reading the audit trail: records queued with the
        # store's next commit are listed too.
        self._flush = flush

    @unary
    async def CreateToken(
        self, request: identity_service_pb2.CreateTokenRequest, context: Context
    ) -> identity_service_pb2.CreateTokenResponse:
        caller = current_caller()
        roles = _roles(request.roles)
        ttl = translate.seconds(request.ttl) if request.HasField("ttl") else None
        token = await self._tokens.create(
            request.display_name,
            request.tenant or caller.tenant,
            roles,
            creator=caller.subject,
            ttl_seconds=ttl,
        )
        return identity_service_pb2.CreateTokenResponse(
            token=token_to_proto(token.record), secret=token.secret
        )

    @unary
    async def ListTokens(
        self, request: identity_service_pb2.ListTokensRequest, context: Context
    ) -> identity_service_pb2.ListTokensResponse:
        records = await self._tokens.list(
            current_caller().tenant, show_revoked=request.show_revoked
        )
        return identity_service_pb2.ListTokensResponse(tokens=[token_to_proto(r) for r in records])

    @unary
    async def RevokeToken(
        self, request: identity_service_pb2.RevokeTokenRequest, context: Context
    ) -> identity_service_pb2.RevokeTokenResponse:
        if not request.name.startswith("tokens/"):
            raise invalid("name", "must be tokens/{id}")
        record = await self._tokens.revoke(request.name, current_caller().tenant)
        return identity_service_pb2.RevokeTokenResponse(token=token_to_proto(record))

    @unary
    async def GetCaller(
        self, request: identity_service_pb2.GetCallerRequest, context: Context
    ) -> identity_service_pb2.GetCallerResponse:
        caller = current_caller()
        return identity_service_pb2.GetCallerResponse(
            subject=caller.subject, tenant=caller.tenant, roles=_role_values(caller.roles)
        )

    @unary
    async def ListAuditRecords(
        self, request: identity_service_pb2.ListAuditRecordsRequest, context: Context
    ) -> identity_service_pb2.ListAuditRecordsResponse:
        size = request.page_size or DEFAULT_PAGE_SIZE
        if size < 0 or size > MAX_PAGE_SIZE:
            raise invalid("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")
        before_id = 0
        if request.page_token:
            if not request.page_token.isdigit():
                raise invalid("page_token", "not a token this server gave out")
            before_id = int(request.page_token)
        query = AuditQuery(
            tenant=current_caller().tenant,
            subject=request.subject,
            method=request.method,
            resource=request.resource,
            start_time=_time(request, "start_time"),
            end_time=_time(request, "end_time"),
            before_id=before_id,
            limit=size + 1,
        )
        await self._flush()
        records = await self._store.list_audit(query)
        page, more = records[:size], len(records) > size
        return identity_service_pb2.ListAuditRecordsResponse(
            records=[audit_to_proto(r) for r in page],
            next_page_token=str(page[-1].id) if more else "",
        )


def _roles(values: Any) -> frozenset[Role]:
    roles = set()
    for value in values:
        try:
            roles.add(Role(value))
        except ValueError:
            raise InvalidArgument(
                f"roles: unknown role {value}", [FieldViolation("roles", f"unknown role {value}")]
            ) from None
    return frozenset(roles)


def _time(request: identity_service_pb2.ListAuditRecordsRequest, field: str) -> float | None:
    if not request.HasField(field):  # type: ignore[arg-type]
        return None
    stamp: timestamp_pb2.Timestamp = getattr(request, field)
    return stamp.seconds + stamp.nanos / 1e9


def _role_values(roles: frozenset[Role]) -> list[identity_service_pb2.Role.ValueType]:
    return [identity_service_pb2.Role.ValueType(int(role)) for role in sorted(roles)]


def token_to_proto(record: TokenRecord) -> identity_service_pb2.Token:
    return identity_service_pb2.Token(
        name=record.name,
        display_name=record.display_name,
        tenant=record.tenant,
        roles=_role_values(record.roles),
        create_time=translate.timestamp(record.create_time),
        expire_time=translate.timestamp(record.expire_time),
        revoke_time=translate.timestamp(record.revoke_time),
        creator=record.creator,
    )


def audit_to_proto(record: AuditRecord) -> identity_service_pb2.AuditRecord:
    return identity_service_pb2.AuditRecord(
        name=f"auditRecords/{record.id}",
        time=translate.timestamp(record.time),
        subject=record.subject,
        tenant=record.tenant,
        method=record.method,
        resource=record.resource,
        request_id=record.request_id,
        code=record.code,
        request=translate.struct(record.request),
        after=translate.struct(record.after),
        before=translate.struct(record.before),
    )
