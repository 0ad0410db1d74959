"""The store: the single source of truth of one experiment (SQLite, WAL, numbered migrations).

The schema is plain SQL (looplab/store/schema.py), queryable with the sqlite3 CLI
(`sqlite3 .looplab/looplab.db`), and the same on PostgreSQL (looplab/store/postgres.py):

attempts            one row per attempt; id 0 is the baseline, 1, 2, ... continue across restarts
    id, started_at, ended_at (unix seconds), model, outcome (NULL while in flight), reason,
    source, source_hash, strategy, tags (JSON list), cases (JSON {case: CaseResult}),
    decision (JSON Decision), metric, speedup, ci_low, ci_high, commit_hash, parent_id,
    details (JSON object), owner_host, owner_pid, owner_token (the loop running it; migration 3),
    accepting (while a winner is archived and committed: its acceptance key; migration 6)
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

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from looplab.records import Decision, Evaluation, Outcome
from looplab.store.acceptance_lock import AcceptanceLock, CrossProcessLock, FileLock
from looplab.store.calls import CallLog
from looplab.store.faults import AFTER_FAULT_BUSY_S, StoreError, busy_timeout_s, translated
from looplab.store.loops import HEARTBEAT_S, SILENT_S, LoopRegistry
from looplab.store.owner import this_process
from looplab.store.rows import RowReader
from looplab.store.schema import LOG_CHARS, MIGRATIONS, AttemptRow, split_sql

if TYPE_CHECKING:
    from looplab.config import Experiment

__all__ = ["HEARTBEAT_S", "LOG_CHARS", "MIGRATIONS", "SILENT_S", "STORE_ENV", "AttemptRow", "Store", "StoreError",
           "open_store"]

STORE_ENV = "LOOPLAB_STORE"  # a store URL used when --store is not given


class _Rows:
    """A statement's rows, read while faults are still translated (a damaged page fails on reading)."""

    def __init__(self, rows: list) -> None:
        self._rows = rows

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list:
        return self._rows

    def __iter__(self) -> Iterator:
        return iter(self._rows)


class Store(LoopRegistry, CallLog, RowReader):
    """One experiment's store in a SQLite file. PostgresStore keeps the same queries elsewhere."""

    FAULTS_AS_USER_ERRORS = True  # a damaged, locked, read-only or full file: one line (StoreError)

    def __init__(self, path: Path) -> None:
        """Open (creating dirs/file) and migrate. WAL mode; every write commits immediately."""
        self.path = Path(path)
        busy = busy_timeout_s()
        with translated(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: each statement commits; multi-statement writes use BEGIN IMMEDIATE.
            self._db = sqlite3.connect(self.path, timeout=busy, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()  # one connection; the lock makes stray worker threads safe too
        try:
            self._execute(f"PRAGMA busy_timeout = {int(busy * 1000)}")
            self._execute("PRAGMA journal_mode = WAL")
            # WAL's own durable mode: a commit survives any crash of looplab (kill -9 included); only a
            # power cut may lose the last commits, never consistency. FULL would fsync every commit.
            self._execute("PRAGMA synchronous = NORMAL")
            self._execute("PRAGMA foreign_keys = ON")
            self._init_sharing(FileLock(self.path.with_name(self.path.name + ".accept.lock")))
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def _init_sharing(self, accept: CrossProcessLock) -> None:
        """What lets several loops share the store: who we are, and the cross-process acceptance lock."""
        self.owner = this_process()
        self._accept = accept
        self._accept_guard = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the backend seam: PostgresStore overrides these ---
    def _execute(self, sql: str, params: tuple | list = ()) -> Any:
        with self._faults():
            return _Rows(self._db.execute(sql, params).fetchall())

    @contextmanager
    def _faults(self) -> Iterator[None]:
        """Faults of the file as StoreError; once it stayed locked, the last records wait only briefly."""
        if not self.FAULTS_AS_USER_ERRORS:
            yield
            return
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
    def _transaction(self) -> Iterator[None]:
        """One write transaction, taking the write lock up front (no deadlock-prone upgrades)."""
        with self._lock:
            self._execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise
            try:
                self._execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # a COMMIT that failed (disk full) leaves it open
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise

    def _lock_ids(self) -> None:
        """Inside a transaction: hold off other writers taking an attempt id (BEGIN IMMEDIATE already does)."""

    def _migration_statements(self, script: str) -> list[str]:
        return split_sql(script)

    def _prepare_schema(self) -> None:
        """Inside the migration transaction, before anything else: make the namespace to migrate."""

    def _migrate(self) -> None:
        with self._transaction():
            self._prepare_schema()
            self._execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                          "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
            # Read inside the write lock: another process may have migrated meanwhile.
            done = self._execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
            for version, script in enumerate(MIGRATIONS[done:], start=done + 1):
                for statement in self._migration_statements(script):
                    self._execute(statement)
                self._execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))

    def schema_version(self) -> int:
        with self._lock:
            return self._execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]

    # --- several loops on one experiment ---
    def acceptance_lock(self) -> AcceptanceLock:
        """Held while a loop re-reads incumbent(), re-judges if it changed, archives and records.

        `async with store.acceptance_lock():` in the loop (never blocks the event loop), or `with`.
        Exclusive across coroutines, threads and processes (and machines, on PostgreSQL).
        """
        return AcceptanceLock(self._accept_guard, self._accept.try_acquire, self._accept.release)

    # --- attempts ---
    def begin_attempt(self, *, model: str, parent_id: int | None = None, details: dict | None = None) -> int:
        """Insert an in-flight row (outcome NULL) and return its id: 1, 2, 3 ... continuing after restarts."""
        with self._transaction():
            self._lock_ids()  # the id is max + 1, computed and taken while no other loop can take one
            row = self._execute(
                "INSERT INTO attempts (id, started_at, model, parent_id, details, owner_host, owner_pid, "
                "owner_token) VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM attempts), ?, ?, ?, ?, ?, ?, ?) "
                "RETURNING id",
                (time.time(), model, parent_id, json.dumps(details or {}), self.owner.host, self.owner.pid,
                 self.owner.token),
            ).fetchone()
        return int(row[0])

    def finish_attempt(
        self,
        attempt_id: int,
        *,
        outcome: Outcome,
        reason: str = "",
        source: str | None = None,
        source_hash: str | None = None,
        strategy: str = "",
        tags: list[str] | None = None,
        evaluation: Evaluation | None = None,
        decision: Decision | None = None,
        metric: float | None = None,
        commit: str | None = None,
        details: dict | None = None,
        accepting: str | None = None,
    ) -> None:
        """Record the end of an attempt (one transaction). speedup/ci come from decision when given.

        reason defaults to the decision's, then the evaluation's; the evaluation's seed, wall
        time and (capped) log land in details unless details already name them. accepting: the
        key of a winner's acceptance still to archive and commit (end_acceptance clears it).
        """
        extra: dict[str, Any] = {}
        if evaluation is not None:
            extra = {"seed": evaluation.seed, "wall_s": evaluation.wall_s, "log": evaluation.log[-LOG_CHARS:]}
            if evaluation.failure is not None:
                extra["eval_failure"] = evaluation.failure.value
            if evaluation.reason:
                extra["eval_reason"] = evaluation.reason
        extra.update(details or {})
        if not reason:
            reason = (decision.reason if decision else "") or (evaluation.reason if evaluation else "")
        cases = {n: c.to_dict() for n, c in evaluation.cases.items()} if evaluation else {}
        with self._transaction():
            old = self._execute("SELECT details FROM attempts WHERE id = ?", (attempt_id,)).fetchone()
            if old is None:
                raise KeyError(f"no attempt {attempt_id} in {self}")
            merged = {**json.loads(old["details"] or "{}"), **extra}
            self._execute(
                """UPDATE attempts SET ended_at = ?, outcome = ?, reason = ?, source = ?, source_hash = ?,
                   strategy = ?, tags = ?, cases = ?, decision = ?, metric = ?, speedup = ?, ci_low = ?,
                   ci_high = ?, commit_hash = COALESCE(?, commit_hash), details = ?, accepting = ? WHERE id = ?""",
                (
                    time.time(), Outcome(outcome).value, reason, source, source_hash, strategy,
                    json.dumps(tags or []), json.dumps(cases),
                    json.dumps(decision.to_dict() if decision else {}), metric,
                    decision.speedup if decision else None, decision.ci_low if decision else None,
                    decision.ci_high if decision else None, commit, json.dumps(merged), accepting, attempt_id,
                ),
            )

    def record_baseline(self, *, source: str, evaluation: Evaluation, metric: float | None, model: str = "",
                        source_hash: str | None = None, extra: dict | None = None) -> int:
        """Store attempt 0 (outcome 'baseline'): the seed the search starts from. Returns 0.

        Recording it again (a re-measured baseline) replaces the row in place. With source_hash,
        find_by_hash() finds the seed too, so a candidate that is the seed again is a duplicate.
        """
        now = time.time()
        cases = json.dumps({n: c.to_dict() for n, c in evaluation.cases.items()})
        details = json.dumps({"seed": evaluation.seed, "wall_s": evaluation.wall_s, "log": evaluation.log[-LOG_CHARS:],
                              **(extra or {})})
        with self._lock:
            # Upsert, not REPLACE: a delete would trip the foreign keys of attempts whose parent is 0.
            self._execute(
                """INSERT INTO attempts (id, started_at, ended_at, model, outcome, reason, source, source_hash, cases,
                   metric, details)
                   VALUES (0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET started_at = excluded.started_at, ended_at = excluded.ended_at,
                   model = excluded.model, outcome = excluded.outcome, reason = excluded.reason,
                   source = excluded.source, source_hash = excluded.source_hash, cases = excluded.cases,
                   metric = excluded.metric, details = excluded.details""",
                (now, now, model, Outcome.BASELINE.value, evaluation.reason, source, source_hash, cases, metric,
                 details),
            )
        return 0

    def in_flight(self) -> list[int]:
        """Ids of attempts begun and not finished."""
        with self._lock:
            return [r[0] for r in self._execute("SELECT id FROM attempts WHERE outcome IS NULL ORDER BY id")]

    def discard_attempt(self, attempt_id: int) -> bool:
        """Forget an in-flight attempt that never really happened (e.g. the replay ran out).

        Its calls, if any, stay in the totals, detached. Finished attempts are history: returns False.
        """
        with self._transaction():
            row = self._execute("SELECT outcome FROM attempts WHERE id = ?", (attempt_id,)).fetchone()
            if row is None or row[0] is not None:
                return False
            self._execute("UPDATE calls SET attempt_id = NULL WHERE attempt_id = ?", (attempt_id,))
            self._execute("UPDATE attempts SET parent_id = NULL WHERE parent_id = ?", (attempt_id,))
            self._execute("DELETE FROM attempts WHERE id = ?", (attempt_id,))
        return True

    def set_commit(self, attempt_id: int, commit: str) -> None:
        with self._lock:
            self._execute("UPDATE attempts SET commit_hash = ? WHERE id = ?", (commit, attempt_id))

    def end_acceptance(self, attempt_id: int, commit: str) -> None:
        """The winner is archived and committed as `commit`: its acceptance is done."""
        with self._transaction():
            self._execute("UPDATE attempts SET commit_hash = ?, accepting = NULL WHERE id = ?", (commit, attempt_id))

    def attempt(self, attempt_id: int) -> AttemptRow | None:
        rows = self._query("WHERE a.id = ?", (attempt_id,))
        return rows[0] if rows else None

    def attempts(self, *, outcomes: list[Outcome] | None = None, limit: int | None = None,
                 newest_first: bool = False, light: bool = False) -> list[AttemptRow]:
        """Finished and in-flight attempts, id order (or newest first), optionally filtered by outcome.

        light: without the candidate's source and its usage (zeros): cheaper, for summaries.
        """
        where, params = "", []
        if outcomes is not None:
            where = f"WHERE a.outcome IN ({','.join('?' * len(outcomes))})" if outcomes else "WHERE 1 = 0"
            params = [Outcome(o).value for o in outcomes]
        order = " ORDER BY a.id DESC" if newest_first else " ORDER BY a.id"
        if limit is not None:
            order += " LIMIT ?"
            params.append(int(limit))
        return self._query(where + order, tuple(params), light=light)

    def baseline(self) -> AttemptRow | None:
        rows = self._query("WHERE a.outcome = ?", (Outcome.BASELINE.value,))
        return rows[0] if rows else None

    def incumbent(self) -> AttemptRow | None:
        """The newest 'accepted' attempt, or the baseline when none.

        Newest by the time it was accepted (ended_at), since attempts in flight together
        may finish out of id order.
        """
        rows = self._query("WHERE a.outcome = ? ORDER BY a.ended_at DESC, a.id DESC LIMIT 1",
                           (Outcome.ACCEPTED.value,))
        return rows[0] if rows else self.baseline()

    def winners(self) -> list[AttemptRow]:
        """Accepted and specialist attempts (not the baseline), id order."""
        return self.attempts(outcomes=[Outcome.ACCEPTED, Outcome.SPECIALIST])

    def outcome_counts(self) -> dict[str, int]:
        """Finished attempts (baseline excluded) by outcome value."""
        with self._lock:
            rows = self._execute(
                "SELECT outcome, COUNT(*) FROM attempts WHERE outcome IS NOT NULL AND outcome != ? "
                "GROUP BY outcome ORDER BY COUNT(*) DESC, outcome",
                (Outcome.BASELINE.value,),
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def find_by_hash(self, source_hash: str) -> AttemptRow | None:
        """The earliest attempt whose normalised source hash is source_hash."""
        rows = self._query("WHERE a.source_hash = ? ORDER BY a.id LIMIT 1", (source_hash,))
        return rows[0] if rows else None

    # --- meta and reset ---
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self._lock:
            r = self._execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return r[0] if r else default

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, str(value)),
            )

    def reset(self) -> None:
        """Forget every attempt, call and meta value (`looplab seed` on a store that is not a file)."""
        with self._transaction():
            for table in ("calls", "attempts", "meta"):
                self._execute(f"DELETE FROM {table}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path})"


def store_url(url: str | None = None) -> str:
    """--store if given, else $LOOPLAB_STORE; "" means the SQLite file in the experiment."""
    return (url if url is not None else os.environ.get(STORE_ENV, "")).strip()


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def sqlite_store_path(experiment: Experiment, url: str) -> Path:
    """The SQLite file a (non-PostgreSQL) store URL names; UserError for anything else."""
    from looplab.errors import UserError

    if not url:
        return experiment.store_path
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))  # sqlite:///rel/path, sqlite:////abs/path
        return path if path.is_absolute() else experiment.root / path
    raise UserError(f"--store {url.split('://')[0]}://...: not a store URL (fix: use postgresql://USER@HOST/DB, "
                    f"sqlite:///PATH, or leave it out for {experiment.store_path}; also checked: ${STORE_ENV})")


def open_store(experiment: Experiment, url: str | None = None) -> Store:
    """The experiment's store: url (--store), else $LOOPLAB_STORE, else the SQLite file in .looplab/.

    postgresql://USER[:PASSWORD]@HOST[:PORT]/DB keeps it in PostgreSQL, one schema per experiment
    (named from experiment.name), so one database can hold several experiments and several loops.
    """
    url = store_url(url)
    if is_postgres_url(url):
        from looplab.store.postgres import PostgresStore, schema_name

        return PostgresStore(url, schema=schema_name(experiment.name))
    return Store(sqlite_store_path(experiment, url))
