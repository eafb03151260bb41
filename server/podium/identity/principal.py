"""A principal: the authenticated caller, its tenant and its roles."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from podium.core.model import DEFAULT_TENANT

__all__ = ["ANONYMOUS", "DEFAULT_TENANT", "TENANT_NAME", "TENANT_NAME_RULE", "Principal", "Role"]

# A tenant named by a token's creator or an admin's `x-podium-tenant`.
TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
TENANT_NAME_RULE = "must match [A-Za-z0-9][A-Za-z0-9_.-]* (at most 63 characters)"


class Role(enum.IntEnum):
    """Values match the contract's podium.v1.Role."""

    ADMIN = 1
    OPERATOR = 2
    DEVELOPER = 3
    VIEWER = 4
    APPROVER = 5
    WORKER = 6

    @classmethod
    def parse(cls, text: str) -> Role:
        """'admin', 'ADMIN' or 'ROLE_ADMIN'; ValueError names the known roles."""
        key = text.strip().upper().removeprefix("ROLE_")
        try:
            return cls[key]
        except KeyError:
            known = ", ".join(role.name.lower() for role in cls)
            raise ValueError(f"unknown role {text!r} (known: {known})") from None


@dataclass(frozen=True)
class Principal:
    """`subject` names the credential: "tokens/{id}", "jwt:{sub}",
    "certificate:{subject}" or "anonymous" when authentication is off."""

    subject: str
    tenant: str
    roles: frozenset[Role]
    # True when an admin acts on `tenant` explicitly (x-podium-tenant) rather
    # than by its credential.
    acting_for: bool = False

    def has_any(self, roles: frozenset[Role]) -> bool:
        return not self.roles.isdisjoint(roles)

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles


# Who calls a server that runs without authentication (loopback only, or --insecure).
ANONYMOUS = Principal("anonymous", DEFAULT_TENANT, frozenset({Role.ADMIN}))
