"""What the operator configures for outbound calls (`podium serve --secret`,
`--secrets-file`, `--http-allow`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from podium.egress.destinations import Network, parse_networks
from podium.egress.secrets import Secrets


@dataclass(frozen=True)
class EgressSettings:
    secrets: Secrets = field(default_factory=Secrets)
    # Networks allowed although private, loopback or link-local.
    allow: tuple[Network, ...] = ()

    @classmethod
    def parse(
        cls,
        secrets: Iterable[str] = (),
        secret_files: Iterable[str] = (),
        allow: Iterable[str] = (),
    ) -> EgressSettings:
        """From command-line values; SecretError or ValueError name a bad one."""
        return cls(Secrets.from_options(secrets, secret_files), tuple(parse_networks(allow)))
