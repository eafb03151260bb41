"""JWT bearer tokens through a real server: keys and a JWKS made by the
test; a good token maps its claims to the principal; expired, forged,
wrong-audience, wrong-issuer tokens and another tenant are refused."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from podium.identity.jwt_bearer import JwtSettings
from podium.server.security import SecurityConfig
from podium.testing import error_info, serving
from podium.testing.identity import stubs_for
from podium.v1 import identity_service_pb2 as ids
from podium.v1 import workflow_service_pb2

ISSUER = "https://issuer.test"
AUDIENCE = "podium"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwks(path: Path, key: rsa.RSAPrivateKey, kid: str) -> str:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    path.write_text(json.dumps({"keys": [{**public, "kid": kid, "use": "sig", "alg": "RS256"}]}))
    return str(path)


def _token(key: rsa.RSAPrivateKey, kid: str = "k1", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "ada", "iat": now, "exp": now + 300}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def signing_key() -> rsa.RSAPrivateKey:
    return _key()


def _security(tmp_path: Path, key: rsa.RSAPrivateKey) -> SecurityConfig:
    settings = JwtSettings(
        jwks=_jwks(tmp_path / "jwks.json", key, "k1"), issuer=ISSUER, audience=AUDIENCE
    )
    return SecurityConfig(jwt=settings)


async def test_claims_map_to_the_principal(tmp_path: Path, signing_key: rsa.RSAPrivateKey) -> None:
    async with serving(str(tmp_path / "p.db"), security=_security(tmp_path, signing_key)) as served:
        token = _token(signing_key, roles=["developer", "someone-elses-role"], tenant="default")
        async with stubs_for(served.address, token) as stubs:
            caller = await stubs.identity.GetCaller(ids.GetCallerRequest())
            assert (caller.subject, caller.tenant) == ("jwt:ada", "default")
            assert list(caller.roles) == [ids.ROLE_DEVELOPER]
            await stubs.workflows.ListWorkflows(workflow_service_pb2.ListWorkflowsRequest())
        # Another tenant's claim is served as that tenant (resources are kept apart).
        acme = _token(signing_key, roles=["viewer"], tenant="acme")
        async with stubs_for(served.address, acme) as stubs:
            caller = await stubs.identity.GetCaller(ids.GetCallerRequest())
            assert caller.tenant == "acme"
        spaced = _token(signing_key, roles="viewer approver")
        async with stubs_for(served.address, spaced) as stubs:
            caller = await stubs.identity.GetCaller(ids.GetCallerRequest())
            assert set(caller.roles) == {ids.ROLE_VIEWER, ids.ROLE_APPROVER}


async def test_bad_tokens_are_refused(tmp_path: Path, signing_key: rsa.RSAPrivateKey) -> None:
    forger = _key()
    now = int(time.time())
    cases = {
        "expired": (_token(signing_key, roles=["admin"], exp=now - 3600), "JWT_EXPIRED"),
        "forged": (_token(forger, roles=["admin"]), "JWT_INVALID"),
        "unknown key": (_token(signing_key, kid="k2", roles=["admin"]), "JWT_INVALID"),
        "wrong audience": (_token(signing_key, roles=["admin"], aud="other"), "JWT_AUDIENCE"),
        "wrong issuer": (_token(signing_key, roles=["admin"], iss="https://evil"), "JWT_ISSUER"),
        "no expiry": (_token(signing_key, roles=["admin"], exp=None), "JWT_INVALID"),
        "garbage": ("a.b.c", "JWT_INVALID"),
    }
    unsigned = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 60, "roles": ["admin"]},
        None,  # type: ignore[arg-type]
        algorithm="none",
    )
    cases["alg none"] = (unsigned, "JWT_INVALID")
    async with serving(str(tmp_path / "p.db"), security=_security(tmp_path, signing_key)) as served:
        for name, (token, reason) in cases.items():
            async with stubs_for(served.address, token) as stubs:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stubs.identity.GetCaller(ids.GetCallerRequest())
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
            assert error_info(refused.value).reason == reason, name
        no_roles = _token(signing_key)
        async with stubs_for(served.address, no_roles) as stubs:
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await stubs.identity.GetCaller(ids.GetCallerRequest())
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(denied.value).reason == "NO_ROLE"


async def test_a_missing_jwks_file_stops_the_start(tmp_path: Path) -> None:
    from podium.server.security import ServeRefused

    settings = JwtSettings(jwks=str(tmp_path / "missing.json"), issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ServeRefused, match=r"missing\.json"):
        async with serving(str(tmp_path / "p.db"), security=SecurityConfig(jwt=settings)):
            pass


async def test_keys_from_a_jwks_url(tmp_path: Path, signing_key: rsa.RSAPrivateKey) -> None:
    import http.server
    import threading

    body = Path(_jwks(tmp_path / "jwks.json", signing_key, "k1")).read_bytes()

    class Keys(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    keys = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    thread = threading.Thread(target=keys.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{keys.server_address[1]}/jwks.json"
        security = SecurityConfig(jwt=JwtSettings(jwks=url, issuer=ISSUER, audience=AUDIENCE))
        async with serving(str(tmp_path / "p.db"), security=security) as served:
            async with stubs_for(served.address, _token(signing_key, roles=["viewer"])) as stubs:
                caller = await stubs.identity.GetCaller(ids.GetCallerRequest())
            assert caller.subject == "jwt:ada"
            async with stubs_for(served.address, _token(_key(), roles=["admin"])) as stubs:
                with pytest.raises(grpc.aio.AioRpcError) as forged:
                    await stubs.identity.GetCaller(ids.GetCallerRequest())
            assert error_info(forged.value).reason == "JWT_INVALID"
    finally:
        keys.shutdown()
        keys.server_close()
