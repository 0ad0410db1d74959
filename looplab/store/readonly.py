"""Open an experiment's store read-only: the report and the dashboard look, they never write."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from looplab.config import Experiment
from looplab.store import Store, is_postgres_url, sqlite_store_path, store_url


class ReadOnlyStore(Store):
    """The Store's queries over a `mode=ro` SQLite connection: any write fails inside SQLite itself.

    No directories are created and no migration runs, so opening it changes nothing on disk.
    """

    FAULTS_AS_USER_ERRORS = False  # the dashboard tells a damaged file by sqlite3's own errors (open_readonly)

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no store yet")
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        self._db = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._db.execute("PRAGMA busy_timeout = 30000")


def open_readonly(experiment: Experiment, url: str | None = None) -> Store | None:
    """The experiment's store (--store URL, else $LOOPLAB_STORE, else its SQLite file), read-only;
    None when the experiment has not run yet (or the file is not a store). A PostgreSQL server
    that cannot be reached is a UserError, as for every other command."""
    url = store_url(url)
    if is_postgres_url(url):
        from looplab.store.postgres import ReadOnlyPostgresStore, schema_name

        try:
            return ReadOnlyPostgresStore(url, schema=schema_name(experiment.name))
        except FileNotFoundError:
            return None
    try:
        store = ReadOnlyStore(sqlite_store_path(experiment, url))
    except (FileNotFoundError, sqlite3.DatabaseError):
        return None
    try:
        store.fingerprint()  # fails here, not mid-render, on a file that is not a looplab store
    except sqlite3.DatabaseError:
        store.close()
        return None
    return store
