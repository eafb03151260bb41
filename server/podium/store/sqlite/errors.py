"""Store failures as the server reports them."""

from __future__ import annotations


class StoreOpenError(OSError):
    """The database cannot be opened: corrupt, not a database, unreadable or
    owned by another server. The message is one line for the operator."""
