"""Credentials in tests: API tokens made on an in-process server, stubs that
send one, and certificates made on the spot for TLS and mTLS."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from podium.client._credentials import aio_interceptors
from podium.identity.principal import DEFAULT_TENANT, Role
from podium.server.app import PodiumServer
from podium.testing.stubs import Stubs

__all__ = ["CertificateFiles", "make_ca", "make_certificate", "new_token", "stubs_for"]


async def new_token(
    server: PodiumServer,
    *roles: Role,
    tenant: str = DEFAULT_TENANT,
    ttl_seconds: float | None = None,
) -> str:
    """The secret of a new API token, made as the bootstrap command does."""
    assert server.tokens is not None
    token = await server.tokens.create(
        f"test {'+'.join(r.name.lower() for r in roles)}",
        tenant,
        frozenset(roles),
        creator="test",
        ttl_seconds=ttl_seconds,
    )
    return token.secret


@contextlib.asynccontextmanager
async def stubs_for(
    address: str,
    token: str | None = None,
    *,
    credentials: grpc.ChannelCredentials | None = None,
) -> AsyncIterator[Stubs]:
    """Stubs on a channel of their own that sends `token` as a bearer token;
    TLS with `credentials` (then address the server as localhost:PORT)."""
    interceptors = aio_interceptors(token)
    if credentials is not None:
        channel = grpc.aio.secure_channel(address, credentials, interceptors=interceptors)
    else:
        channel = grpc.aio.insecure_channel(address, interceptors=interceptors)
    async with channel:
        yield Stubs.on(channel)


@dataclass(frozen=True)
class CertificateFiles:
    cert: Path
    key: Path


def _name(common_name: str, organization: str | None, units: tuple[str, ...]) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attributes += [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, u) for u in units]
    return x509.Name(attributes)


def _write(
    directory: Path, stem: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> CertificateFiles:
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return CertificateFiles(cert_path, key_path)


def make_ca(directory: Path, name: str = "Podium test CA") -> CertificateFiles:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(name, None, ())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _write(directory, name.replace(" ", "-"), certificate, key)


def make_certificate(
    directory: Path,
    ca: CertificateFiles,
    common_name: str,
    *,
    organization: str | None = None,
    units: tuple[str, ...] = (),
    server: bool = False,
) -> CertificateFiles:
    """A certificate signed by `ca`: for a server (names localhost and
    127.0.0.1) or a client (its subject maps to a principal)."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization, units))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if server:
        import ipaddress

        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    certificate = builder.sign(ca_key, hashes.SHA256())
    return _write(directory, common_name.replace(" ", "-"), certificate, key)
