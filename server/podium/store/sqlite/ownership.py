"""One server per database file: an exclusive lock on a sibling file, held
while the store is open.

Two servers writing one file would each believe their own in-memory view
(run ids, sequences, budgets) and diverge. The lock is `flock` on
`<db>.lock`, not on the database itself: SQLite takes its own POSIX locks on
the database, and a second descriptor closing would drop those. The kernel
releases the lock when the process dies, so a crash never leaves it stale.
"""

from __future__ import annotations

import fcntl
import os

from podium.store.sqlite.errors import StoreOpenError


class DatabaseLock:
    def __init__(self, db_path: str) -> None:
        self.path = db_path + ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Takes the lock or raises StoreOpenError saying the file is in use."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreOpenError(
                f"database {self.path.removesuffix('.lock')} is in use by another podium server"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
