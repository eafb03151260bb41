"""What identity needs from storage; the SQLite backend implements it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from podium.identity.tokens import TokenRecord


@dataclass(frozen=True)
class AuditRecord:
    time: float
    subject: str
    tenant: str
    method: str
    resource: str
    request_id: str
    code: str
    request: dict[str, Any]
    after: dict[str, Any] | None
    before: dict[str, Any] | None = None
    # Assigned by the store, increasing.
    id: int = 0


@dataclass(frozen=True)
class AuditQuery:
    tenant: str
    subject: str = ""
    method: str = ""
    resource: str = ""
    start_time: float | None = None
    end_time: float | None = None
    # Records with an id below this one (the page token); 0: from the newest.
    before_id: int = 0
    limit: int = 100


class IdentityStore(Protocol):
    async def get_token(self, token_id: str) -> TokenRecord | None: ...

    async def put_token(self, record: TokenRecord) -> None:
        """Inserts or replaces, durably."""

    async def list_tokens(self, tenant: str) -> list[TokenRecord]: ...

    def append_audit(self, record: AuditRecord) -> None:
        """Queued with the store's next commit."""

    async def list_audit(self, query: AuditQuery) -> list[AuditRecord]: ...
