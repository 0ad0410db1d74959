"""The store: the single source of truth of one experiment (SQLite, WAL, numbered migrations).

One Store class holds the domain operations (attempts.py writes, rows.py reads, calls.py, loops.py);
where the store lives is its Backend (backend.py): SQLite (sqlite.py, the default), PostgreSQL
(postgres.py) or a read-only view (readonly.py); open_store() (opening.py) picks it. The schema is
plain SQL (schema.py), queryable with the sqlite3 CLI (`sqlite3 .looplab/looplab.db`):

attempts            one row per attempt; id 0 is the baseline, 1, 2, ... continue across restarts
    id, started_at, ended_at (unix seconds), model, outcome (NULL while in flight), reason,
    source, source_hash, strategy, tags (JSON list), cases (JSON {case: CaseResult}),
    decision (JSON Decision), metric, speedup, ci_low, ci_high, commit_hash, parent_id,
    details (JSON object), owner_host, owner_pid, owner_token (the loop running it; migration 3),
    accepting (while a winner is archived and committed: its acceptance key; migration 6),
    holdout_ok (1/0), holdout_speedup, holdout_cases (JSON {case: CaseResult}): the hidden cases (migration 7)
calls               one row per model call (failed calls too)
    id, attempt_id (NULL for calls outside an attempt), model, kind ('propose', 'reflect', ...),
    prompt_tokens, completion_tokens, cached_tokens, cost_usd (NULL = unknown price),
    latency_s, error, ts, response (the reply text, NULL when not kept; migration 2)
meta                key TEXT PRIMARY KEY, value TEXT
schema_migrations   version, applied_at: which numbered migrations ran

Every write is its own committed transaction, so a kill -9 loses at most the attempt in flight
(which stays outcome NULL until mark_interrupted). Several processes, i.e. several loops, may share
one store: ids are taken inside the write lock, acceptance_lock() serialises new incumbents, and
mark_interrupted() only touches the rows of loops that are certainly dead.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from looplab.store.acceptance_lock import AcceptanceLock
from looplab.store.attempts import AttemptLog
from looplab.store.backend import Backend
from looplab.store.calls import CallLog
from looplab.store.loops import LoopRegistry
from looplab.store.owner import this_process
from looplab.store.rows import RowReader
from looplab.store.schema import MIGRATIONS
from looplab.store.sqlite import SqliteBackend

__all__ = ["Store"]


class Store(AttemptLog, RowReader, CallLog, LoopRegistry):
    """One experiment's store over one backend: Store(path) is the SQLite file at path."""

    def __init__(self, backend: Backend | Path | str) -> None:
        """Open and migrate (a read-only backend is neither created nor migrated)."""
        self.backend: Backend = SqliteBackend(Path(backend)) if isinstance(backend, str | os.PathLike) else backend
        self.owner = this_process()  # who we are, to several loops sharing the store
        self._accept_guard = threading.Lock()
        if not self.backend.read_only:
            try:
                self._migrate()
            except BaseException:
                self.backend.close()
                raise

    @property
    def read_only(self) -> bool:
        return self.backend.read_only

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        with self.backend.transaction():
            self.backend.prepare_schema()
            self.backend.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                                 "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
            # Read inside the write lock: another process may have migrated meanwhile.
            done = self.backend.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
            for version, migration in enumerate(MIGRATIONS[done:], start=done + 1):
                for statement in self.backend.migration_statements(migration):
                    self.backend.execute(statement)
                self.backend.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))

    def schema_version(self) -> int:
        with self.backend.lock:
            return self.backend.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]

    # --- several loops on one experiment ---
    def acceptance_lock(self) -> AcceptanceLock:
        """Held while a loop re-reads incumbent(), re-judges if it changed, archives and records.

        `async with store.acceptance_lock():` in the loop (never blocks the event loop), or `with`.
        Exclusive across coroutines, threads and processes (and machines, on PostgreSQL).
        """
        lock = self.backend.acceptance_lock()
        return AcceptanceLock(self._accept_guard, lock.try_acquire, lock.release)

    # --- meta and reset ---
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self.backend.lock:
            r = self.backend.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return r[0] if r else default

    def set_meta(self, key: str, value: str) -> None:
        with self.backend.transaction():
            self.backend.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, str(value)),
            )

    def reset(self) -> None:
        """Forget every attempt, call and meta value (`looplab seed` on a store that is not a file)."""
        with self.backend.transaction():
            for table in ("calls", "attempts", "meta"):
                self.backend.execute(f"DELETE FROM {table}")

    def __repr__(self) -> str:
        return f"Store({self.backend!r})"
