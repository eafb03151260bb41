"""Named secrets (env, file, secrets file; redaction) and webhook signatures."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from podium.egress.secrets import REDACTED, SecretError, Secrets
from podium.egress.webhooks import backoff, signature, signed_headers


def test_secrets_come_from_env_files_and_secrets_files(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("from-file\n")
    listing = tmp_path / "secrets"
    listing.write_text(f"# comment\n\nlisted=file:{tmp_path / 'key'}\n")
    secrets = Secrets.from_options(
        ["api=env:API_KEY"], [str(listing)], environ={"API_KEY": "from-env"}
    )
    assert secrets.get("api") == "from-env"
    assert secrets.get("listed") == "from-file"
    assert secrets.get("missing") is None
    assert secrets.names == ["api", "listed"]


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        ("api=env:NOT_SET", "'NOT_SET' is not set"),
        ("api", "expected NAME=env:VAR"),
        ("bad name=env:X", "expected NAME=env:VAR"),
        ("api=vault:x", "env:VAR or file:PATH"),
        ("api=file:/no/such/file", "cannot read"),
    ],
)
def test_a_bad_secret_option_is_one_clear_error(option: str, needle: str) -> None:
    with pytest.raises(SecretError, match=needle):
        Secrets.from_options([option], environ={})


def test_redaction_replaces_every_value_longest_first() -> None:
    secrets = Secrets({"a": "abc", "b": "abcdef"})
    assert secrets.redact("x abcdef y abc") == f"x {REDACTED} y {REDACTED}"
    assert secrets.contains_any("..abc..") and not secrets.contains_any("ab")


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"run":"runs/1"}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("k", 1_700_000_000, body) == "v1=" + expected
    headers = signed_headers("k", 1_700_000_000, body)
    assert headers["Podium-Timestamp"] == "1700000000"
    assert headers["Podium-Signature"] == "v1=" + expected
    assert signature("other", 1_700_000_000, body) != headers["Podium-Signature"]


def test_backoff_doubles_up_to_its_ceiling() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff(30) == 600.0
