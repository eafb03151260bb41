"""Unauthenticated serving only on loopback: the decision is made before
anything is opened or bound (no test binds a non-loopback address)."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium.cli.main import main
from podium.server.security import (
    SecurityConfig,
    ServeRefused,
    TlsFiles,
    check_address,
    is_loopback,
)


@pytest.mark.parametrize(
    "address", ["127.0.0.1:50051", "127.0.0.2:1", "[::1]:50051", "localhost:50051"]
)
def test_loopback_addresses(address: str) -> None:
    assert is_loopback(address)
    check_address(address, SecurityConfig())


@pytest.mark.parametrize(
    "address", ["0.0.0.0:0", "[::]:50051", "10.1.2.3:50051", "podium.example:443", "192.168.0.1:1"]
)
def test_other_addresses_need_authentication_or_insecure(address: str) -> None:
    assert not is_loopback(address)
    with pytest.raises(ServeRefused, match="without authentication"):
        check_address(address, SecurityConfig())
    check_address(address, SecurityConfig(auth=True))
    check_address(address, SecurityConfig(insecure=True))
    check_address(address, SecurityConfig(tls=TlsFiles("c", "k", client_ca="ca")))
    with pytest.raises(ServeRefused):  # TLS alone authenticates nobody
        check_address(address, SecurityConfig(tls=TlsFiles("c", "k")))


def test_podium_serve_refuses_before_binding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "p.db"
    code = main(["serve", "--address", "0.0.0.0:0", "--db", str(db)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert err.startswith("error: refusing to serve 0.0.0.0:0 without authentication")
    assert not db.exists()  # nothing opened either


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-client-ca", "ca.pem"], "--tls-client-ca needs --tls-cert and --tls-key"),
        (["--jwks", "k.json"], "--jwks needs --jwt-issuer and --jwt-audience"),
        (["--auth", "--rate-limit", "0"], "--rate-limit must be positive"),
        (["--http-cors-origin", "http://a.example"], "--http-cors-origin needs --http-address"),
    ],
)
def test_flags_that_do_not_go_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = main(["serve", "--db", str(tmp_path / "p.db"), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f"error: {message}"


def test_podium_serve_refuses_an_open_http_address_before_binding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "p.db"
    code = main(
        ["serve", "--address", "127.0.0.1:0", "--http-address", "0.0.0.0:0", "--db", str(db)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (
        "error: refusing to serve 0.0.0.0:0 without authentication: use --auth (API tokens),"
        " --jwks, --tls-client-ca, or --insecure to serve it open anyway"
    )
    assert not db.exists()
