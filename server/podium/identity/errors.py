"""Why a call is refused. The server turns these into UNAUTHENTICATED and
PERMISSION_DENIED with the reason in an ErrorInfo."""

from __future__ import annotations


class Unauthenticated(Exception):
    """No credential, or one that does not prove who the caller is."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


class PermissionDenied(Exception):
    """A known caller whose roles do not allow the call."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
