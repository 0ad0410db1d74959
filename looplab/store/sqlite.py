"""The SQLite backends (see backend.py): the file read and written, and the file only looked at.

SqliteBackend: one file, WAL, every write its own committed transaction. Several processes may share
the file: BEGIN IMMEDIATE takes the write lock up front, and an fcntl lock on a file next to it is the
acceptance lock. Faults of the file (damaged, locked, read-only, full) are one-line StoreErrors.

ReadOnlySqliteBackend: a `mode=ro` connection for the report and the dashboard. No folder or file is
created and no migration runs, so opening it changes nothing on disk; every write the Store attempts
fails first with ReadOnlyStoreError (and SQLite itself would refuse it too). Faults stay sqlite3's own
errors: open_readonly() tells a file that is not a store by them.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from looplab.store.acceptance_lock import CrossProcessLock, FileLock
from looplab.store.backend import ReadOnlyStoreError, Rows
from looplab.store.faults import AFTER_FAULT_BUSY_S, StoreError, busy_timeout_s, translated
from looplab.store.schema import Migration, split_sql

SQLITE_NOW_SQL = "((julianday('now') - 2440587.5) * 86400.0)"
READ_BUSY_MS = 30000  # a reader waits out a writer's checkpoint


def sqlite_statements(migration: Migration) -> list[str]:
    return split_sql(migration if isinstance(migration, str) else migration.sqlite)


class SqliteBackend:
    """A SQLite file opened to read and write: created (with its folders) when missing."""

    read_only = False
    now_sql = SQLITE_NOW_SQL

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        busy = busy_timeout_s()
        with translated(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: each statement commits; multi-statement writes use BEGIN IMMEDIATE.
            self._db = sqlite3.connect(self.path, timeout=busy, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self.lock = threading.RLock()  # one connection; the lock makes stray worker threads safe too
        self._accept = FileLock(self.path.with_name(self.path.name + ".accept.lock"))
        try:
            self.execute(f"PRAGMA busy_timeout = {int(busy * 1000)}")
            self.execute("PRAGMA journal_mode = WAL")
            # WAL's own durable mode: a commit survives any crash of looplab (kill -9 included); only a
            # power cut may lose the last commits, never consistency. FULL would fsync every commit.
            self.execute("PRAGMA synchronous = NORMAL")
            self.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            self._db.close()
            raise

    def execute(self, sql: str, params: tuple | list = ()) -> Rows:
        with self._faults():
            return Rows(self._db.execute(sql, params).fetchall())

    @contextmanager
    def _faults(self) -> Iterator[None]:
        """Faults of the file as StoreError; once it stayed locked, the last records wait only briefly."""
        try:
            with translated(self.path):
                yield
        except StoreError as e:
            if e.kind == "locked":
                with contextlib.suppress(sqlite3.Error):
                    wait = min(AFTER_FAULT_BUSY_S, busy_timeout_s())
                    self._db.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
            raise

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction, taking the write lock up front (no deadlock-prone upgrades)."""
        with self.lock:
            self.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._rollback()
                raise
            try:
                self.execute("COMMIT")
            except BaseException:
                self._rollback()  # a COMMIT that failed (disk full) leaves it open
                raise

    def _rollback(self) -> None:
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def lock_ids(self) -> None:
        """BEGIN IMMEDIATE already holds off every other writer."""

    def prepare_schema(self) -> None:
        """A SQLite file is its own namespace."""

    def migration_statements(self, migration: Migration) -> list[str]:
        return sqlite_statements(migration)

    def acceptance_lock(self) -> CrossProcessLock:
        return self._accept

    def close(self) -> None:
        with self.lock:
            self._db.close()

    def __repr__(self) -> str:
        return str(self.path)



class ReadOnlySqliteBackend:
    """An existing SQLite store opened `mode=ro`; FileNotFoundError when there is none yet."""

    read_only = True
    now_sql = SQLITE_NOW_SQL

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no store yet")
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        with translated(self.path):  # a damaged file is the same one line as for a writer
            self._db = sqlite3.connect(uri, uri=True, timeout=READ_BUSY_MS / 1000, isolation_level=None,
                                       check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self.lock = threading.RLock()
            self._db.execute(f"PRAGMA busy_timeout = {READ_BUSY_MS}")

    def execute(self, sql: str, params: tuple | list = ()) -> Rows:
        with translated(self.path):
            return Rows(self._db.execute(sql, params).fetchall())

    def _refuse(self) -> NoReturn:
        raise ReadOnlyStoreError(str(self.path))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._refuse()
        yield  # never reached

    def lock_ids(self) -> None:
        self._refuse()

    def prepare_schema(self) -> None:
        self._refuse()

    def migration_statements(self, migration: Migration) -> list[str]:
        self._refuse()

    def acceptance_lock(self) -> NoReturn:
        self._refuse()

    def close(self) -> None:
        with self.lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"{self.path} (read-only)"
