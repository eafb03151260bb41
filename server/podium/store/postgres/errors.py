"""Store failures as the server reports them."""

from __future__ import annotations


class StoreOpenError(OSError):
    """The database cannot be reached, is not Podium's, or is held by another
    server. The message is one line for the operator (no password)."""
