"""Open an experiment's store read-only: the report and the dashboard look, they never write."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from looplab.store import Store


class ReadOnlyStore(Store):
    """The Store's queries over a `mode=ro` SQLite connection: any write fails inside SQLite itself.

    No directories are created and no migration runs, so opening it changes nothing on disk.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no store yet")
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        self._db = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._db.execute("PRAGMA busy_timeout = 30000")

    def fingerprint(self) -> tuple:
        """Changes whenever an attempt begins or ends or a model call is recorded (cheap to poll)."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(MAX(id), -1), COALESCE(SUM(outcome IS NULL), 0), "
                "COALESCE(MAX(ended_at), 0), (SELECT COUNT(*) FROM calls), "
                "(SELECT COALESCE(MAX(id), 0) FROM calls) FROM attempts"
            ).fetchone()
        return tuple(row)


def open_readonly(path: Path) -> ReadOnlyStore | None:
    """The store at path, or None when the experiment has not run yet (or the file is not a store)."""
    try:
        store = ReadOnlyStore(path)
    except (FileNotFoundError, sqlite3.DatabaseError):
        return None
    try:
        store.fingerprint()  # fails here, not mid-render, on a file that is not a looplab store
    except sqlite3.DatabaseError:
        store.close()
        return None
    return store
