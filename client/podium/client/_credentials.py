"""Who the client is to the server: a bearer token (an API token or a JWT,
sent as `authorization: Bearer …` on every call) and TLS, with a client
certificate for mTLS."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

__all__ = [
    "TLS_CA_ENV",
    "TLS_CERT_ENV",
    "TLS_KEY_ENV",
    "TOKEN_ENV",
    "TlsOptions",
    "aio_interceptors",
    "resolve_tls",
    "resolve_token",
    "sync_channel",
]

TOKEN_ENV = "PODIUM_TOKEN"
TLS_CA_ENV = "PODIUM_TLS_CA"
TLS_CERT_ENV = "PODIUM_TLS_CERT"
TLS_KEY_ENV = "PODIUM_TLS_KEY"


@dataclass(frozen=True)
class TlsOptions:
    """PEM files: `ca` verifies the server (None: the system's roots);
    `cert` and `key` are the client's certificate for mTLS."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("a client certificate needs both --tls-cert and --tls-key")

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca),
            private_key=_read(self.key),
            certificate_chain=_read(self.cert),
        )


def resolve_token(token: str | None) -> str | None:
    """The explicit token, else $PODIUM_TOKEN, else None (no credentials)."""
    return token or os.environ.get(TOKEN_ENV) or None


def resolve_tls(tls: TlsOptions | None) -> TlsOptions | None:
    """The explicit options, else $PODIUM_TLS_CA / _CERT / _KEY, else None (plain text)."""
    if tls is not None:
        return tls
    ca, cert, key = (
        os.environ.get(name) or None for name in (TLS_CA_ENV, TLS_CERT_ENV, TLS_KEY_ENV)
    )
    if ca is None and cert is None and key is None:
        return None
    return TlsOptions(ca, cert, key)


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None


def _with_token(metadata: Any, token: str) -> list[tuple[str, str | bytes]]:
    return [*(metadata or ()), ("authorization", f"Bearer {token}")]


class _AioBearerUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        details = client_call_details._replace(
            metadata=_with_token(client_call_details.metadata, self._token)
        )
        return await continuation(details, request)


class _AioBearerStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        details = client_call_details._replace(
            metadata=_with_token(client_call_details.metadata, self._token)
        )
        return await continuation(details, request)


class _AioBearerSession(grpc.aio.StreamStreamClientInterceptor):
    """A worker's session (WorkerService.Connect) carries the token too."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_stream_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request_iterator: Any
    ) -> Any:
        details = client_call_details._replace(
            metadata=_with_token(client_call_details.metadata, self._token)
        )
        return await continuation(details, request_iterator)


def aio_interceptors(token: str | None) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors that add the bearer token to every call (none without one)."""
    if token is None:
        return []
    return [_AioBearerUnary(token), _AioBearerStream(token), _AioBearerSession(token)]


class _SyncBearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=_with_token(details.metadata, self._token))

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request)


def sync_channel(
    address: str, options: Any, token: str | None, tls: TlsOptions | None
) -> grpc.Channel:
    if tls is not None:
        channel = grpc.secure_channel(address, tls.credentials(), options=options)
    else:
        channel = grpc.insecure_channel(address, options=options)
    if token is not None:
        channel = grpc.intercept_channel(channel, _SyncBearer(token))
    return channel


def aio_channel(
    address: str,
    options: Any,
    token: str | None,
    tls: TlsOptions | None,
    interceptors: list[Any],
) -> grpc.aio.Channel:
    interceptors = [*aio_interceptors(token), *interceptors]
    if tls is not None:
        return grpc.aio.secure_channel(
            address, tls.credentials(), options=options, interceptors=interceptors
        )
    return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
