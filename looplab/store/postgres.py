"""The PostgreSQL backend, for several loops (on several machines) sharing one experiment (see backend.py).

Same schema, migrations and queries as the SQLite store (schema.to_postgres translates), in
one PostgreSQL schema per experiment, so one database holds several experiments. Attempt ids are
taken under a transaction-scoped advisory lock; acceptance_lock() is a session advisory lock on a
connection of its own, which the server drops if the loop's machine dies. Opened read-only, the
session itself refuses writes, and the Store refuses them first (ReadOnlyStoreError).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from looplab.errors import UserError
from looplab.store.acceptance_lock import CrossProcessLock
from looplab.store.backend import ReadOnlyStoreError, Rows
from looplab.store.faults import StoreError
from looplab.store.schema import Migration, split_sql, to_postgres

try:
    import psycopg
    from psycopg import sql as pgsql
except ImportError:  # optional: pip install 'looplab[postgres]'
    psycopg = None  # type: ignore[assignment]

CONNECT_TIMEOUT_S = 10


def schema_name(experiment_name: str) -> str:
    """looplab_<name> as a plain PostgreSQL identifier; a hash keeps distinct names distinct."""
    plain = re.sub(r"[^a-z0-9_]+", "_", experiment_name.lower()).strip("_") or "experiment"
    if plain == experiment_name and len(plain) <= 40:
        return f"looplab_{plain}"
    digest = hashlib.sha256(experiment_name.encode()).hexdigest()[:8]
    return f"looplab_{plain[:40]}_{digest}"


def redact(url: str) -> str:
    """The URL without its password, fit for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def _lock_key(schema: str, purpose: str) -> int:
    """A 64-bit advisory lock key per experiment and purpose (ids, migration, acceptance)."""
    return int.from_bytes(hashlib.sha256(f"looplab:{schema}:{purpose}".encode()).digest()[:8], "big", signed=True)


def _require_psycopg(url: str) -> None:
    if psycopg is None:
        raise UserError(f"--store {redact(url)}: PostgreSQL support is not installed "
                        "(fix: pip install 'looplab[postgres]')")


class _Row(dict):
    """A row readable by column name and by position, like sqlite3.Row."""

    values_: tuple = ()

    def __getitem__(self, key: Any) -> Any:
        return self.values_[key] if isinstance(key, int) else dict.__getitem__(self, key)


def _row_factory(cursor: Any) -> Callable[[Any], _Row]:
    names = [c.name for c in cursor.description or []]

    def make(values: Any) -> _Row:
        row = _Row(zip(names, values, strict=True))
        row.values_ = tuple(values)
        return row

    return make


class _AdvisoryLock:
    """pg_try_advisory_lock on a dedicated connection (a session lock: reentrant per connection)."""

    def __init__(self, connect: Callable[[], Any], key: int) -> None:
        self._connect = connect
        self._key = key
        self._conn: Any = None

    def try_acquire(self) -> bool:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return bool(self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()[0])

    def release(self) -> None:
        try:
            self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
        except psycopg.OperationalError:
            self._conn.close()  # the connection is gone, and the server dropped the lock with it

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class PostgresBackend:
    """A connection to a PostgreSQL server, in schema `schema` (see schema_name); read_only: look only."""

    now_sql = "EXTRACT(EPOCH FROM clock_timestamp())::double precision"

    def __init__(self, url: str, *, schema: str, read_only: bool = False) -> None:
        _require_psycopg(url)
        self.url, self.schema, self.read_only = url, schema, read_only
        self.lock = threading.RLock()
        self._db = self._connect(read_only=read_only)
        self._accept: _AdvisoryLock | None = None
        if read_only:
            self._require_schema()  # no schema is created and no migration runs: the dashboard only looks
        else:
            self._accept = _AdvisoryLock(self._connect, _lock_key(schema, "accept"))

    def _require_schema(self) -> None:
        found = self._db.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
                                 "AND table_name = 'attempts'", (self.schema,)).fetchone()
        if not found:
            self._db.close()
            raise FileNotFoundError(f"{redact(self.url)}: no store for schema {self.schema} yet")

    def _connect(self, *, read_only: bool = False) -> Any:
        extra = {"options": "-c default_transaction_read_only=on"} if read_only else {}
        try:
            conn = psycopg.connect(self.url, autocommit=True, row_factory=_row_factory,
                                   connect_timeout=CONNECT_TIMEOUT_S, **extra)
        except psycopg.Error as e:
            detail = " ".join(str(e).split())[:300]
            raise UserError(f"--store {redact(self.url)}: cannot connect: {detail} (fix: check the URL, "
                            "that the server is running and reachable, and the user and password)") from None
        conn.execute(pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(self.schema)))
        return conn

    def reconnect(self) -> None:
        """A fresh session after the server dropped this one."""
        self._db = self._connect(read_only=self.read_only)

    def close(self) -> None:
        with self.lock:
            if self._accept is not None:
                self._accept.close()
            self._db.close()

    def execute(self, sql: str, params: tuple | list = ()) -> Rows:
        with self._faults():
            cursor = self._db.execute(to_postgres(sql), params)
            return Rows(cursor.fetchall() if cursor.description is not None else [])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self.read_only:
            raise ReadOnlyStoreError(redact(self.url))
        with self.lock, self._faults(), self._db.transaction():
            yield

    @contextmanager
    def _faults(self) -> Iterator[None]:
        """A server that went away (or refuses writes: disk full, read-only) is one line, not a traceback."""
        try:
            yield
        except psycopg.OperationalError as e:
            detail = " ".join(str(e).split())[:300]
            raise StoreError(f"--store {redact(self.url)}: the PostgreSQL store failed: {detail} (fix: check "
                             "that the server is up, reachable and has space, then run again; every finished "
                             "attempt is kept)", "io") from None

    def lock_ids(self) -> None:
        self.execute("SELECT pg_advisory_xact_lock(?)", (_lock_key(self.schema, "ids"),))

    def prepare_schema(self) -> None:
        # Two loops starting at once: one creates the schema and migrates, the other waits.
        self.execute("SELECT pg_advisory_xact_lock(?)", (_lock_key(self.schema, "migrate"),))
        self._db.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(self.schema)))

    def migration_statements(self, migration: Migration) -> list[str]:
        return split_sql(migration if isinstance(migration, str) else migration.postgres)

    def acceptance_lock(self) -> CrossProcessLock:
        if self._accept is None:
            raise ReadOnlyStoreError(redact(self.url))
        return self._accept

    def drop(self) -> None:
        """Delete this experiment's schema and everything in it (other experiments are untouched)."""
        if self.read_only:
            raise ReadOnlyStoreError(redact(self.url))
        with self.lock:
            self._db.execute(pgsql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(pgsql.Identifier(self.schema)))

    def __repr__(self) -> str:
        return f"{redact(self.url)} schema {self.schema}" + (" (read-only)" if self.read_only else "")
