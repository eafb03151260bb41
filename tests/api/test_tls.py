"""TLS and mTLS with certificates the test makes: a TLS client verifies the
server; a plain-text client cannot talk to it; with a client CA the server
requires a client certificate and maps its subject to the principal."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from podium.client import AsyncClient, PodiumError, TlsOptions
from podium.server.security import SecurityConfig, TlsFiles
from podium.testing import serving
from podium.testing.identity import make_ca, make_certificate, stubs_for
from podium.v1 import identity_service_pb2 as ids

CALLER = ids.GetCallerRequest()


async def test_tls_handshake(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    server_cert = make_certificate(tmp_path, ca, "podium-server", server=True)
    tls = TlsFiles(str(server_cert.cert), str(server_cert.key))
    async with serving(str(tmp_path / "p.db"), security=SecurityConfig(tls=tls)) as served:
        port = served.server.port
        trusted = grpc.ssl_channel_credentials(ca.cert.read_bytes())
        async with stubs_for(f"localhost:{port}", credentials=trusted) as stubs:
            caller = await stubs.identity.GetCaller(CALLER)
            assert caller.subject == "anonymous"  # TLS alone authenticates nobody
        async with stubs_for(f"127.0.0.1:{port}") as plain:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await plain.identity.GetCaller(CALLER, timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        other_ca = make_ca(tmp_path, "Other CA")
        untrusted = grpc.ssl_channel_credentials(other_ca.cert.read_bytes())
        async with stubs_for(f"localhost:{port}", credentials=untrusted) as stubs:
            with pytest.raises(grpc.aio.AioRpcError) as unverified:
                await stubs.identity.GetCaller(CALLER, timeout=10)
            assert unverified.value.code() == grpc.StatusCode.UNAVAILABLE
        async with AsyncClient(f"localhost:{port}", tls=TlsOptions(ca=str(ca.cert))) as client:
            assert (await client.get_caller()).subject == "anonymous"


async def test_mtls_maps_the_certificate_subject_to_the_principal(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    server_cert = make_certificate(tmp_path, ca, "podium-server", server=True)
    alice = make_certificate(tmp_path, ca, "alice", units=("operator", "approver", "sales"))
    nobody = make_certificate(tmp_path, ca, "nobody")
    outsider_ca = make_ca(tmp_path, "Outsider CA")
    mallory = make_certificate(tmp_path, outsider_ca, "mallory", units=("admin",))
    tls = TlsFiles(str(server_cert.cert), str(server_cert.key), client_ca=str(ca.cert))
    async with serving(str(tmp_path / "p.db"), security=SecurityConfig(tls=tls)) as served:
        address = f"localhost:{served.server.port}"
        options = TlsOptions(ca=str(ca.cert), cert=str(alice.cert), key=str(alice.key))
        async with AsyncClient(address, tls=options) as client:
            caller = await client.get_caller()
        assert (caller.subject, caller.tenant) == ("certificate:alice", "default")
        assert set(caller.roles) == {ids.ROLE_OPERATOR, ids.ROLE_APPROVER}

        options = TlsOptions(ca=str(ca.cert), cert=str(nobody.cert), key=str(nobody.key))
        async with AsyncClient(address, tls=options) as client:
            with pytest.raises(PodiumError) as no_role:
                await client.get_caller()
        assert no_role.value.code == grpc.StatusCode.PERMISSION_DENIED

        for files in (None, mallory):
            options = TlsOptions(
                ca=str(ca.cert),
                cert=str(files.cert) if files else None,
                key=str(files.key) if files else None,
            )
            async with AsyncClient(address, tls=options, timeout=10) as client:
                with pytest.raises(PodiumError) as refused:
                    await client.get_caller()
            assert refused.value.code == grpc.StatusCode.UNAVAILABLE


async def test_the_blocking_client_over_mtls_with_a_token(tmp_path: Path) -> None:
    import asyncio

    from podium.client import Client
    from podium.identity.principal import Role
    from podium.testing.identity import new_token

    ca = make_ca(tmp_path)
    server_cert = make_certificate(tmp_path, ca, "podium-server", server=True)
    bob = make_certificate(tmp_path, ca, "bob", units=("viewer",))
    tls = TlsFiles(str(server_cert.cert), str(server_cert.key), client_ca=str(ca.cert))
    async with serving(str(tmp_path / "p.db"), security=SecurityConfig(tls=tls)) as served:
        admin = await new_token(served.server, Role.ADMIN)
        options = TlsOptions(ca=str(ca.cert), cert=str(bob.cert), key=str(bob.key))
        address = f"localhost:{served.server.port}"

        def callers() -> tuple[str, str]:
            with Client(address, tls=options) as by_certificate:
                certificate = by_certificate.get_caller().subject
            with Client(address, tls=options, token=admin) as by_token:
                token = by_token.get_caller().subject
            return certificate, token

        certificate, token = await asyncio.to_thread(callers)
    assert certificate == "certificate:bob"
    assert token == f"tokens/{admin.split('_')[1]}"  # a bearer token wins over the certificate
