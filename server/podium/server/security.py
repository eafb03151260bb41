"""How a server is secured: authentication, TLS (and mTLS), the per-tenant
request rate; and the rule that a server without authentication listens on
loopback addresses only, unless told `insecure`."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import grpc

from podium.identity.jwt_settings import JwtSettings


class ServeRefused(OSError):
    """The configuration may not serve this address; nothing was bound."""


@dataclass(frozen=True)
class TlsFiles:
    cert: str
    key: str
    # PEM of the CAs whose client certificates are accepted: mTLS, required.
    client_ca: str | None = None


@dataclass(frozen=True)
class SecurityConfig:
    # Require credentials (API tokens; JWTs with `jwt`; client certificates with mTLS).
    auth: bool = False
    jwt: JwtSettings | None = None
    tls: TlsFiles | None = None
    # Serve a non-loopback address without authentication.
    insecure: bool = False
    # Requests per second per tenant (burst as many); None: unlimited.
    rate_limit: float | None = None

    @property
    def authenticates(self) -> bool:
        return self.auth or self.jwt is not None or self.client_certificates

    @property
    def client_certificates(self) -> bool:
        return self.tls is not None and self.tls.client_ca is not None


def is_loopback(address: str) -> bool:
    """host:port (host a name, IPv4 or [IPv6]) on a loopback interface."""
    host = address.rsplit(":", 1)[0] if ":" in address else address
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_address(address: str, config: SecurityConfig) -> None:
    """ServeRefused, before anything binds, when `address` would expose a
    server that asks for no credentials."""
    if config.authenticates or config.insecure or is_loopback(address):
        return
    raise ServeRefused(
        f"refusing to serve {address} without authentication: use --auth (API tokens), "
        "--jwks, --tls-client-ca, or --insecure to serve it open anyway"
    )


def server_credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    """ServeRefused naming the file that cannot be read."""
    cert, key = _read(tls.cert), _read(tls.key)
    client_ca = _read(tls.client_ca) if tls.client_ca else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ServeRefused(f"cannot read {path}: {error.strerror or error}") from None
