"""The store's backend seam: what differs between SQLite, PostgreSQL and a read-only view, and nothing else.

Store (core.py) holds every domain operation and speaks portable SQL (`?` placeholders, see schema.py)
through one Backend: run a statement, run a write transaction, take the attempt-id lock, prepare and
migrate the schema, and hand out the cross-process acceptance lock. Implementations: SqliteBackend and
ReadOnlySqliteBackend (sqlite.py), PostgresBackend (postgres.py, also read-only); open_store (opening.py)
picks one. A read-only backend refuses every write with ReadOnlyStoreError.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from looplab.store.acceptance_lock import CrossProcessLock
from looplab.store.faults import StoreError
from looplab.store.schema import Migration


@runtime_checkable
class Backend(Protocol):
    """One connection to where an experiment's store lives."""

    read_only: bool  # opened only to look: nothing is created, migrated or written
    lock: threading.RLock  # one connection per backend: held around every statement sequence
    now_sql: str  # the store's own clock in SQL, unix seconds (the server's, for PostgreSQL)

    def execute(self, sql: str, params: tuple | list = ()) -> Rows:
        """Run one portable statement; its rows read by column name and by position."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """One write transaction (commit on success, rollback on error); ReadOnlyStoreError when read-only."""
        ...

    def lock_ids(self) -> None:
        """Inside a transaction: hold off other writers taking an attempt id."""
        ...

    def prepare_schema(self) -> None:
        """Inside the migration transaction, before anything else: make the namespace to migrate."""
        ...

    def migration_statements(self, migration: Migration) -> list[str]:
        """The statements of one numbered migration, in this backend's dialect."""
        ...

    def acceptance_lock(self) -> CrossProcessLock:
        """The lock between processes (and machines) that serialises new incumbents."""
        ...

    def close(self) -> None: ...


class ReadOnlyStoreError(StoreError):
    """A write on a store opened read-only (the report, the dashboard, the progress panel only look)."""

    def __init__(self, where: str) -> None:
        super().__init__(f"{where}: this store was opened read-only and cannot be written (fix: open it with "
                         "open_store(experiment) to record; the report and the dashboard only read)", "readonly")


class Rows:
    """A statement's rows, read while the backend still translates faults (a damaged page fails on reading)."""

    def __init__(self, rows: list) -> None:
        self._rows = rows

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list:
        return self._rows

    def __iter__(self) -> Iterator:
        return iter(self._rows)
