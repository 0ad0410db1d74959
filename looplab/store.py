"""The store: the single source of truth of one experiment (SQLite, WAL, numbered migrations).

The schema is plain SQL, queryable with the sqlite3 CLI (`sqlite3 .looplab/looplab.db`):

attempts            one row per attempt; id 0 is the baseline, 1, 2, ... continue across restarts
    id, started_at, ended_at (unix seconds), model, outcome (NULL while in flight), reason,
    source, source_hash, strategy, tags (JSON list), cases (JSON {case: CaseResult}),
    decision (JSON Decision), metric, speedup, ci_low, ci_high, commit_hash, parent_id,
    details (JSON object)
calls               one row per model call (failed calls too)
    id, attempt_id (NULL for calls outside an attempt), model, kind ('propose', 'reflect', ...),
    prompt_tokens, completion_tokens, cached_tokens, cost_usd (NULL = unknown price),
    latency_s, error, ts, response (the reply text, NULL when not kept; migration 2)
meta                key TEXT PRIMARY KEY, value TEXT
schema_migrations   version, applied_at: which numbered migrations ran

Every write is its own committed transaction, so a kill -9 loses at most the attempt in flight
(which stays outcome NULL until mark_interrupted). Several processes may open the same file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from looplab.records import CaseResult, Decision, Evaluation, Outcome, Usage

# Numbered migrations, applied in order; never edit a shipped one, append a new one.
MIGRATIONS: list[str] = [
    # 1: everything
    """
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        started_at REAL NOT NULL,
        ended_at REAL,
        model TEXT NOT NULL DEFAULT '',
        outcome TEXT,
        reason TEXT NOT NULL DEFAULT '',
        source TEXT,
        source_hash TEXT,
        strategy TEXT NOT NULL DEFAULT '',
        tags TEXT NOT NULL DEFAULT '[]',
        cases TEXT NOT NULL DEFAULT '{}',
        decision TEXT NOT NULL DEFAULT '{}',
        metric REAL,
        speedup REAL,
        ci_low REAL,
        ci_high REAL,
        commit_hash TEXT,
        parent_id INTEGER REFERENCES attempts(id),
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX attempts_outcome ON attempts(outcome);
    CREATE INDEX attempts_source_hash ON attempts(source_hash);
    CREATE TABLE calls (
        id INTEGER PRIMARY KEY,
        attempt_id INTEGER REFERENCES attempts(id),
        model TEXT NOT NULL,
        kind TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        cached_tokens INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL,
        latency_s REAL NOT NULL DEFAULT 0,
        error TEXT,
        ts REAL NOT NULL
    );
    CREATE INDEX calls_attempt ON calls(attempt_id);
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: keep reply texts, so a run can be exported and replayed without a model
    """
    ALTER TABLE calls ADD COLUMN response TEXT;
    """,
]

LOG_CHARS = 4000  # evaluation log kept per attempt; enough for the first compiler errors

# Per-attempt usage; a call with tokens but no price makes the attempt's cost unknown.
_SELECT = """
SELECT a.*,
       COALESCE(u.prompt_tokens, 0) AS u_prompt, COALESCE(u.completion_tokens, 0) AS u_completion,
       COALESCE(u.cached_tokens, 0) AS u_cached, COALESCE(u.cost, 0.0) AS u_cost,
       COALESCE(u.unknown, 0) AS u_unknown
FROM attempts a LEFT JOIN (
    SELECT attempt_id, SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens,
           SUM(cached_tokens) AS cached_tokens, SUM(cost_usd) AS cost,
           SUM(cost_usd IS NULL AND prompt_tokens + completion_tokens > 0) AS unknown
    FROM calls WHERE attempt_id IS NOT NULL GROUP BY attempt_id
) u ON u.attempt_id = a.id
"""


@dataclass
class AttemptRow:
    """One attempt as stored. outcome is None while the attempt is in flight."""

    id: int
    started_at: float
    ended_at: float | None
    model: str
    outcome: Outcome | None
    reason: str = ""
    source: str | None = None
    source_hash: str | None = None
    strategy: str = ""  # the model's one-line Strategy: note
    tags: list[str] = field(default_factory=list)
    cases: dict[str, CaseResult] = field(default_factory=dict)  # candidate's per-case results
    decision: dict[str, Any] = field(default_factory=dict)  # Decision.to_dict()
    metric: float | None = None  # aggregate objective of the candidate (e.g. geomean of case medians, us)
    speedup: float | None = None  # vs the incumbent it was judged against
    ci_low: float | None = None
    ci_high: float | None = None
    commit: str | None = None  # short hash of the winner's git commit / archive name
    parent_id: int | None = None
    usage: Usage = field(default_factory=Usage)  # sum of this attempt's model calls
    details: dict[str, Any] = field(default_factory=dict)  # anything else (seed, log excerpt, strategy kind)


def _split_sql(script: str) -> list[str]:
    """Split a script into complete statements (sqlite3.complete_statement keeps triggers whole)."""
    statements, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements


def _row(r: sqlite3.Row) -> AttemptRow:
    cases = {name: CaseResult.from_dict(d) for name, d in json.loads(r["cases"] or "{}").items()}
    cost = None if r["u_unknown"] else float(r["u_cost"])
    return AttemptRow(
        id=r["id"],
        started_at=r["started_at"],
        ended_at=r["ended_at"],
        model=r["model"],
        outcome=Outcome(r["outcome"]) if r["outcome"] is not None else None,
        reason=r["reason"],
        source=r["source"],
        source_hash=r["source_hash"],
        strategy=r["strategy"],
        tags=json.loads(r["tags"] or "[]"),
        cases=cases,
        decision=json.loads(r["decision"] or "{}"),
        metric=r["metric"],
        speedup=r["speedup"],
        ci_low=r["ci_low"],
        ci_high=r["ci_high"],
        commit=r["commit_hash"],
        parent_id=r["parent_id"],
        usage=Usage(r["u_prompt"], r["u_completion"], r["u_cached"], cost),
        details=json.loads(r["details"] or "{}"),
    )


class Store:
    def __init__(self, path: Path) -> None:
        """Open (creating dirs/file) and migrate. WAL mode; every write commits immediately."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: each statement commits; multi-statement writes use BEGIN IMMEDIATE.
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()  # one connection; the lock makes stray worker threads safe too
        self._db.execute("PRAGMA busy_timeout = 30000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction, taking the write lock up front (no deadlock-prone upgrades)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        with self._transaction():
            # Re-read inside the write lock: another process may have migrated meanwhile.
            done = self._db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
            for version, script in enumerate(MIGRATIONS[done:], start=done + 1):
                for statement in _split_sql(script):
                    self._db.execute(statement)
                self._db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))

    def schema_version(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]

    # --- attempts ---
    def begin_attempt(self, *, model: str, parent_id: int | None = None, details: dict | None = None) -> int:
        """Insert an in-flight row (outcome NULL) and return its id: 1, 2, 3 ... continuing after restarts."""
        with self._lock:
            # One statement computes and takes the id, so two processes never get the same one.
            cur = self._db.execute(
                "INSERT INTO attempts (id, started_at, model, parent_id, details) "
                "VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM attempts), ?, ?, ?, ?)",
                (time.time(), model, parent_id, json.dumps(details or {})),
            )
            return int(cur.lastrowid)

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
    ) -> None:
        """Record the end of an attempt (one transaction). speedup/ci come from decision when given.

        reason defaults to the decision's, then the evaluation's; the evaluation's seed, wall
        time and (capped) log land in details unless details already name them.
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
            old = self._db.execute("SELECT details FROM attempts WHERE id = ?", (attempt_id,)).fetchone()
            if old is None:
                raise KeyError(f"no attempt {attempt_id} in {self.path}")
            merged = {**json.loads(old["details"] or "{}"), **extra}
            self._db.execute(
                """UPDATE attempts SET ended_at = ?, outcome = ?, reason = ?, source = ?, source_hash = ?,
                   strategy = ?, tags = ?, cases = ?, decision = ?, metric = ?, speedup = ?, ci_low = ?,
                   ci_high = ?, commit_hash = COALESCE(?, commit_hash), details = ? WHERE id = ?""",
                (
                    time.time(), Outcome(outcome).value, reason, source, source_hash, strategy,
                    json.dumps(tags or []), json.dumps(cases),
                    json.dumps(decision.to_dict() if decision else {}), metric,
                    decision.speedup if decision else None, decision.ci_low if decision else None,
                    decision.ci_high if decision else None, commit, json.dumps(merged), attempt_id,
                ),
            )

    def record_baseline(self, *, source: str, evaluation: Evaluation, metric: float | None, model: str = "") -> int:
        """Store attempt 0 (outcome 'baseline'): the seed the search starts from. Returns 0.

        Recording it again (a re-measured baseline) replaces the row in place.
        """
        now = time.time()
        cases = json.dumps({n: c.to_dict() for n, c in evaluation.cases.items()})
        details = json.dumps({"seed": evaluation.seed, "wall_s": evaluation.wall_s, "log": evaluation.log[-LOG_CHARS:]})
        with self._lock:
            # Upsert, not REPLACE: a delete would trip the foreign keys of attempts whose parent is 0.
            self._db.execute(
                """INSERT INTO attempts (id, started_at, ended_at, model, outcome, reason, source, cases, metric, details)
                   VALUES (0, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET started_at = excluded.started_at, ended_at = excluded.ended_at,
                   model = excluded.model, outcome = excluded.outcome, reason = excluded.reason,
                   source = excluded.source, cases = excluded.cases, metric = excluded.metric,
                   details = excluded.details""",
                (now, now, model, Outcome.BASELINE.value, evaluation.reason, source, cases, metric, details),
            )
        return 0

    def mark_interrupted(self) -> list[int]:
        """Rows still in flight (a crash or kill -9) become 'interrupted'; returns their ids."""
        with self._transaction():
            ids = [r[0] for r in self._db.execute("SELECT id FROM attempts WHERE outcome IS NULL ORDER BY id")]
            self._db.execute(
                "UPDATE attempts SET outcome = ?, ended_at = ?, reason = ? WHERE outcome IS NULL",
                (Outcome.INTERRUPTED.value, time.time(), "still in flight when the run stopped"),
            )
        return ids

    def in_flight(self) -> list[int]:
        """Ids of attempts begun and not finished."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT id FROM attempts WHERE outcome IS NULL ORDER BY id")]

    def discard_attempt(self, attempt_id: int) -> bool:
        """Forget an in-flight attempt that never really happened (e.g. the replay ran out).

        Its calls, if any, stay in the totals, detached. Finished attempts are history: returns False.
        """
        with self._transaction():
            row = self._db.execute("SELECT outcome FROM attempts WHERE id = ?", (attempt_id,)).fetchone()
            if row is None or row[0] is not None:
                return False
            self._db.execute("UPDATE calls SET attempt_id = NULL WHERE attempt_id = ?", (attempt_id,))
            self._db.execute("UPDATE attempts SET parent_id = NULL WHERE parent_id = ?", (attempt_id,))
            self._db.execute("DELETE FROM attempts WHERE id = ?", (attempt_id,))
        return True

    def set_commit(self, attempt_id: int, commit: str) -> None:
        with self._lock:
            self._db.execute("UPDATE attempts SET commit_hash = ? WHERE id = ?", (commit, attempt_id))

    def attempt(self, attempt_id: int) -> AttemptRow | None:
        rows = self._query("WHERE a.id = ?", (attempt_id,))
        return rows[0] if rows else None

    def attempts(self, *, outcomes: list[Outcome] | None = None, limit: int | None = None,
                 newest_first: bool = False) -> list[AttemptRow]:
        """Finished and in-flight attempts, id order (or newest first), optionally filtered by outcome."""
        where, params = "", []
        if outcomes is not None:
            where = f"WHERE a.outcome IN ({','.join('?' * len(outcomes))})"
            params = [Outcome(o).value for o in outcomes]
        order = " ORDER BY a.id DESC" if newest_first else " ORDER BY a.id"
        if limit is not None:
            order += " LIMIT ?"
            params.append(int(limit))
        return self._query(where + order, tuple(params))

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
            rows = self._db.execute(
                "SELECT outcome, COUNT(*) FROM attempts WHERE outcome IS NOT NULL AND outcome != ? "
                "GROUP BY outcome ORDER BY COUNT(*) DESC, outcome",
                (Outcome.BASELINE.value,),
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def find_by_hash(self, source_hash: str) -> AttemptRow | None:
        """The earliest attempt whose normalised source hash is source_hash."""
        rows = self._query("WHERE a.source_hash = ? ORDER BY a.id LIMIT 1", (source_hash,))
        return rows[0] if rows else None

    def _query(self, tail: str, params: tuple = ()) -> list[AttemptRow]:
        with self._lock:
            return [_row(r) for r in self._db.execute(_SELECT + tail, params).fetchall()]

    # --- model calls and cost ---
    def record_call(self, *, attempt_id: int | None, model: str, kind: str, usage: Usage,
                    latency_s: float, error: str | None = None, response: str | None = None) -> None:
        """One model call (kind: 'propose', 'reflect', ...); failed calls are recorded too.

        response: the reply text, kept for `export-replies` (replies()).
        """
        with self._lock:
            self._db.execute(
                "INSERT INTO calls (attempt_id, model, kind, prompt_tokens, completion_tokens, cached_tokens, "
                "cost_usd, latency_s, error, ts, response) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (attempt_id, model, kind, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens,
                 usage.cost_usd, latency_s, error, time.time(), response),
            )

    def replies(self, kind: str = "propose") -> list[tuple[str, Usage]]:
        """(reply text, usage) of successful calls that kept their text, oldest first — for replay."""
        with self._lock:
            rows = self._db.execute(
                "SELECT response, prompt_tokens, completion_tokens, cached_tokens, cost_usd FROM calls "
                "WHERE kind = ? AND error IS NULL AND response IS NOT NULL ORDER BY id",
                (kind,),
            ).fetchall()
        return [(r[0], Usage(r[1], r[2], r[3], r[4])) for r in rows]

    def calls(self, attempt_id: int | None = None) -> list[dict[str, Any]]:
        """Model calls as plain dicts (all, or one attempt's), oldest first."""
        with self._lock:
            if attempt_id is None:
                rows = self._db.execute("SELECT * FROM calls ORDER BY id").fetchall()
            else:
                rows = self._db.execute("SELECT * FROM calls WHERE attempt_id = ? ORDER BY id",
                                        (attempt_id,)).fetchall()
        return [dict(r) for r in rows]

    def usage_total(self) -> Usage:
        """Sum over all calls; cost_usd is None when any call's price was unknown."""
        with self._lock:
            r = self._db.execute(
                "SELECT COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
                "COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(cost_usd), 0.0), "
                "COALESCE(SUM(cost_usd IS NULL AND prompt_tokens + completion_tokens > 0), 0) FROM calls"
            ).fetchone()
        return Usage(r[0], r[1], r[2], None if r[4] else float(r[3]))

    # --- meta and reset ---
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self._lock:
            r = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return r[0] if r else default

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, str(value)),
            )
