"""The one place calls are admitted: authentication (podium.identity's
Authenticator), authorization by the per-RPC table (podium.identity.access),
the per-tenant request rate, and the audit record of every mutation.

Refusals are UNAUTHENTICATED (no or bad credentials) or PERMISSION_DENIED (a
known caller without a role for the method), each with an ErrorInfo reason;
an exceeded request rate is RESOURCE_EXHAUSTED (reason RATE_LIMITED) with a
RetryInfo. Health and reflection stay open to everyone."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeAlias, cast

import grpc
from google.protobuf import any_pb2, duration_pb2, message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from podium.core.clock import Clock
from podium.identity.access import Access, access_of, is_open
from podium.identity.authenticator import Authenticator, Credentials
from podium.identity.errors import PermissionDenied, Unauthenticated
from podium.identity.ports import IdentityStore
from podium.identity.principal import ANONYMOUS, TENANT_NAME, TENANT_NAME_RULE, Principal
from podium.identity.rates import TenantRateLimiter
from podium.server import audit
from podium.server.audit_before import BeforeReader
from podium.server.caller import reset_caller, set_caller
from podium.server.status import DOMAIN

log = logging.getLogger("podium.server")

# Metadata by which an admin acts on another tenant than its credential's.
TENANT_METADATA = "x-podium-tenant"

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]"
StreamingBehaviour = Callable[..., AsyncIterator[Any]]
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class IdentityInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        authenticator: Authenticator,
        store: IdentityStore,
        clock: Clock,
        limiter: TenantRateLimiter | None = None,
        before: BeforeReader | None = None,
    ) -> None:
        self._authenticator = authenticator
        self._store = store
        self._clock = clock
        self._limiter = limiter
        self._before = before

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or is_open(method):
            return handler
        access = access_of(method)
        if handler.unary_unary is not None:
            return handler._replace(  # type: ignore[attr-defined, no-any-return]
                unary_unary=self._unary(method, access, handler.unary_unary)
            )
        if handler.unary_stream is not None:
            return handler._replace(  # type: ignore[attr-defined, no-any-return]
                unary_stream=self._streaming(
                    method, access, cast(StreamingBehaviour, handler.unary_stream)
                )
            )
        if handler.stream_stream is not None:
            # A worker's session: admitted before its first message is read.
            return handler._replace(  # type: ignore[attr-defined, no-any-return]
                stream_stream=self._bidirectional(
                    method, access, cast(StreamingBehaviour, handler.stream_stream)
                )
            )
        # No client-streaming RPC with a single reply exists in Podium's API:
        # refuse rather than serve one unchecked if it ever appears.
        raise RuntimeError(f"{method}: the identity interceptor does not handle its shape")

    def _unary(
        self, method: str, access: Access, behaviour: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        async def handle(request: Any, context: Context) -> Any:
            principal = await self._admit(method, access, request, context)
            token = set_caller(principal)
            try:
                if not access.mutation:
                    return await behaviour(request, context)
                before = await self._read_before(method, request)
                try:
                    response = await behaviour(request, context)
                except BaseException:
                    code = _code_of(context)
                    self._audit(method, principal, request, None, code, context, before)
                    raise
                self._audit(method, principal, request, response, "OK", context, before)
                return response
            finally:
                reset_caller(token)

        return handle

    def _streaming(
        self, method: str, access: Access, behaviour: StreamingBehaviour
    ) -> StreamingBehaviour:
        async def handle(request: Any, context: Context) -> AsyncIterator[Any]:
            principal = await self._admit(method, access, request, context)
            token = set_caller(principal)
            try:
                async for response in behaviour(request, context):
                    yield response
            finally:
                reset_caller(token)

        return handle

    def _bidirectional(
        self, method: str, access: Access, behaviour: StreamingBehaviour
    ) -> StreamingBehaviour:
        async def handle(requests: Any, context: Context) -> AsyncIterator[Any]:
            principal = await self._admit(method, access, None, context)
            token = set_caller(principal)
            try:
                async for response in behaviour(requests, context):
                    yield response
            finally:
                reset_caller(token)

        return handle

    async def _admit(
        self, method: str, access: Access, request: Any, context: Context
    ) -> Principal:
        """The caller's principal; aborts the call when it may not go on."""
        try:
            if self._authenticator.enabled:
                principal = await self._authenticator.authenticate(_credentials(context))
            else:
                principal = ANONYMOUS
        except Unauthenticated as error:
            await _abort(context, code_pb2.UNAUTHENTICATED, error.message, error.reason)
            raise  # unreachable: abort raises
        except PermissionDenied as error:
            await _abort(context, code_pb2.PERMISSION_DENIED, error.message, error.reason)
            raise
        if not principal.has_any(access.roles):
            if access.mutation:
                self._audit(method, principal, request, None, "PERMISSION_DENIED", context)
            await _abort(
                context,
                code_pb2.PERMISSION_DENIED,
                f"{principal.subject} may not call {method.rsplit('/', 1)[-1]}",
                "ROLE_NOT_ALLOWED",
            )
        if self._limiter is not None:
            wait = self._limiter.take(principal.tenant)
            if wait > 0:
                await _abort_rate_limited(context, principal.tenant, wait)
        acting_for = _metadata(context, TENANT_METADATA)
        if acting_for is not None:
            principal = await self._act_for(method, access, principal, acting_for, request, context)
        return principal

    async def _act_for(
        self,
        method: str,
        access: Access,
        principal: Principal,
        tenant: str,
        request: Any,
        context: Context,
    ) -> Principal:
        """An admin acting on another tenant explicitly: the call is served as that
        tenant's (the subject stays the admin's, in the audit trail too)."""
        if not principal.is_admin:
            if access.mutation:
                self._audit(method, principal, request, None, "PERMISSION_DENIED", context)
            await _abort(
                context,
                code_pb2.PERMISSION_DENIED,
                f"only an admin may act on another tenant ({TENANT_METADATA})",
                "TENANT_OVERRIDE_DENIED",
            )
        if not TENANT_NAME.match(tenant):
            await _abort_invalid(context, TENANT_METADATA, TENANT_NAME_RULE)
        return replace(principal, tenant=tenant, acting_for=True)

    def _audit(
        self,
        method: str,
        principal: Principal,
        request: Any,
        response: Any,
        code: str,
        context: Context,
        before: Any = None,
    ) -> None:
        try:
            self._store.append_audit(
                audit.record(
                    now=self._clock.now(),
                    principal=principal,
                    method=method,
                    request_id=audit.request_id_of(context.invocation_metadata()),
                    code=code,
                    request=request,
                    response=response,
                    before=before,
                )
            )
        except Exception:
            # The store refuses writes once it has failed; the call's own status says so.
            log.warning("audit record of %s not written", method, exc_info=True)

    async def _read_before(self, method: str, request: Any) -> Any:
        if self._before is None or not isinstance(request, message.Message):
            return None
        try:
            return await self._before.read(method, request)
        except Exception:
            # The record goes without it; the call itself is not the reader's to fail.
            log.warning("audit: the state before %s not read", method, exc_info=True)
            return None


def _metadata(context: Context, key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key and isinstance(value, str):
            return value
    return None


def _credentials(context: Context) -> Credentials:
    authorization = None
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            authorization = value
            break
    certificate = None
    pem = list(context.auth_context().get("x509_pem_cert") or ())
    if pem:
        certificate = pem[0]
    return Credentials(authorization, certificate)


def _code_of(context: Context) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if isinstance(code, int):
        return str(code_pb2.Code.Name(code))
    return "UNKNOWN"


async def _abort_invalid(context: Context, field: str, description: str) -> None:
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason="INVALID_ARGUMENT", domain=DOMAIN))
    violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
    bad_request = any_pb2.Any()
    bad_request.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    status = status_pb2.Status(
        code=code_pb2.INVALID_ARGUMENT,
        message=f"{field}: {description}",
        details=[info, bad_request],
    )
    await context.abort_with_status(rpc_status.to_status(status))


async def _abort(context: Context, code: int, message: str, reason: str) -> None:
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN))
    status = status_pb2.Status(code=code, message=message, details=[info])
    await context.abort_with_status(rpc_status.to_status(status))


async def _abort_rate_limited(context: Context, tenant: str, wait: float) -> None:
    info = any_pb2.Any()
    info.Pack(
        error_details_pb2.ErrorInfo(
            reason="RATE_LIMITED", domain=DOMAIN, metadata={"tenant": tenant}
        )
    )
    retry = any_pb2.Any()
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(max(1, int(wait * 1e9)))
    retry.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status = status_pb2.Status(
        code=code_pb2.RESOURCE_EXHAUSTED,
        message=f"tenant {tenant!r} is over its request rate; retry in {wait:.3f}s",
        details=[info, retry],
    )
    await context.abort_with_status(rpc_status.to_status(status))
