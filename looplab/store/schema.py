"""The store's schema, written once: numbered migrations, the attempt row and its query.

The SQL is portable between SQLite and PostgreSQL; to_postgres() is the whole dialect translation
(identity keys, double precision, %s placeholders), so both backends run the same migrations. A
migration that needs what SQL does not share (JSON functions) is written once per dialect (Dialects).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from looplab.records import CaseResult, Outcome, Usage


@dataclass(frozen=True)
class Dialects:
    """One migration written for each backend, where portable SQL cannot say it."""

    sqlite: str
    postgres: str


Migration = str | Dialects

_HOLDOUT_KEYS = ("holdout_ok", "holdout_speedup", "holdout_cases")

# Numbered migrations, applied in order; never edit a shipped one, append a new one.
MIGRATIONS: list[Migration] = [
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
    # 3: who runs each attempt, so a loop only marks the in-flight rows of dead loops interrupted
    """
    ALTER TABLE attempts ADD COLUMN owner_host TEXT;
    ALTER TABLE attempts ADD COLUMN owner_pid INTEGER;
    ALTER TABLE attempts ADD COLUMN owner_token TEXT;
    """,
    # 4: running loops beat here, so a loop on another host that died is known by its silence
    """
    CREATE TABLE loops (
        token TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        beat_at REAL NOT NULL
    );
    """,
    # 5: usage (per attempt and in total) read from a small covering index, not from call rows
    # that hold whole replies
    """
    CREATE INDEX calls_usage ON calls(attempt_id, prompt_tokens, completion_tokens, cached_tokens, cost_usd);
    """,
    # 6: a winner's acceptance is a recorded transaction: the row is written first with this key, the
    # archive and git commit follow, then the key is cleared; a loop that starts finishes what a dead one left
    """
    ALTER TABLE attempts ADD COLUMN accepting TEXT;
    """,
    # 7: holdout results get columns of their own (they were keys of details): ok (1/0), the gain over the
    # same incumbent, and the per-case results (JSON {case: CaseResult}); old rows' keys move over
    Dialects(
        sqlite="""
        ALTER TABLE attempts ADD COLUMN holdout_ok INTEGER;
        ALTER TABLE attempts ADD COLUMN holdout_speedup REAL;
        ALTER TABLE attempts ADD COLUMN holdout_cases TEXT;
        UPDATE attempts SET
            holdout_ok = json_extract(details, '$.holdout_ok'),
            holdout_speedup = json_extract(details, '$.holdout_speedup'),
            holdout_cases = json_extract(details, '$.holdout_cases'),
            details = json_remove(details, '$.holdout_ok', '$.holdout_speedup', '$.holdout_cases')
        WHERE json_valid(details) AND (json_type(details, '$.holdout_ok') IS NOT NULL
            OR json_type(details, '$.holdout_speedup') IS NOT NULL
            OR json_type(details, '$.holdout_cases') IS NOT NULL);
        """,
        postgres="""
        ALTER TABLE attempts ADD COLUMN holdout_ok INTEGER;
        ALTER TABLE attempts ADD COLUMN holdout_speedup REAL;
        ALTER TABLE attempts ADD COLUMN holdout_cases TEXT;
        UPDATE attempts SET
            holdout_ok = CASE details::jsonb -> 'holdout_ok' WHEN 'true'::jsonb THEN 1 WHEN 'false'::jsonb THEN 0 END,
            holdout_speedup = (details::jsonb ->> 'holdout_speedup')::double precision,
            holdout_cases = NULLIF((details::jsonb -> 'holdout_cases')::text, 'null'),
            details = (details::jsonb - 'holdout_ok' - 'holdout_speedup' - 'holdout_cases')::text
        WHERE details::jsonb -> 'holdout_ok' IS NOT NULL OR details::jsonb -> 'holdout_speedup' IS NOT NULL
            OR details::jsonb -> 'holdout_cases' IS NOT NULL;
        """,
    ),
    # 8: the keys that tell whether a row changed (SELECT_KEYS) read from an index, not from rows whose
    # source and details spill over pages: the memory's window costs the same at 5,000 attempts as at 50
    """
    CREATE INDEX attempts_keys ON attempts(id, started_at, ended_at, outcome, commit_hash, parent_id);
    """,
]

LOG_CHARS = 4000  # evaluation log kept per attempt; enough for the first compiler errors

# Per-attempt usage; a call with tokens but no price makes the attempt's cost unknown.
SELECT_ATTEMPTS = """
SELECT a.*,
       COALESCE((SELECT SUM(c.prompt_tokens) FROM calls c WHERE c.attempt_id = a.id), 0) AS u_prompt,
       COALESCE((SELECT SUM(c.completion_tokens) FROM calls c WHERE c.attempt_id = a.id), 0) AS u_completion,
       COALESCE((SELECT SUM(c.cached_tokens) FROM calls c WHERE c.attempt_id = a.id), 0) AS u_cached,
       COALESCE((SELECT SUM(c.cost_usd) FROM calls c WHERE c.attempt_id = a.id), 0.0) AS u_cost,
       (SELECT COUNT(*) FROM calls c WHERE c.attempt_id = a.id AND c.cost_usd IS NULL
            AND c.prompt_tokens + c.completion_tokens > 0) AS u_unknown
FROM attempts a
"""
# The same rows without the candidate's source and its calls' usage (zeros): for summaries like memory,
# whose cost then stays flat (five lookups in calls per row are most of a few hundred rows' query).
SELECT_ATTEMPTS_LIGHT = """
SELECT a.id, a.started_at, a.ended_at, a.model,
       a.outcome, a.reason, NULL AS source, a.source_hash, a.strategy, a.tags, a.cases, a.decision, a.metric,
       a.speedup, a.ci_low, a.ci_high, a.commit_hash, a.parent_id, a.details, a.owner_host, a.owner_pid,
       a.owner_token, a.holdout_ok, a.holdout_speedup, a.holdout_cases,
       0 AS u_prompt, 0 AS u_completion, 0 AS u_cached, 0.0 AS u_cost, 0 AS u_unknown
FROM attempts a
"""
# What tells whether a row changed since it was read (light rows are parsed once; store.py).
SELECT_KEYS = "SELECT a.id, a.started_at, a.ended_at, a.outcome, a.commit_hash, a.parent_id FROM attempts a\n"


@dataclass
class Holdout:
    """A candidate on the hidden holdout cases, kept apart from its search results (migration 7)."""

    ok: bool | None  # right on every holdout case (None: a row from before migration 7 did not say)
    speedup: float | None = None  # vs the same incumbent as the search cases' gain
    cases: dict[str, CaseResult] = field(default_factory=dict)

    @classmethod
    def from_details(cls, details: dict[str, Any]) -> Holdout | None:
        """Take the old holdout_* keys out of a details dict (rows and callers from before migration 7)."""
        if not any(k in details for k in _HOLDOUT_KEYS):
            return None
        ok, speedup, cases = (details.pop(k, None) for k in _HOLDOUT_KEYS)
        return cls(None if ok is None else bool(ok), speedup, _case_results(cases))


def _case_results(cases: Any) -> dict[str, CaseResult]:
    if isinstance(cases, str):
        cases = json.loads(cases)
    return {n: CaseResult.from_dict({"case": n, **d}) for n, d in (cases or {}).items() if isinstance(d, dict)}


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
    owner: str = ""  # "host:pid" of the loop that ran it ("" before migration 3)
    accepting: str | None = None  # set while the winner is being archived and committed (migration 6)
    holdout: Holdout | None = None  # the hidden holdout cases' results, when the candidate got that far

    def all_cases(self) -> dict[str, CaseResult]:
        """Search and holdout case results together; on a name in both, the search evaluation's result."""
        return {**(self.holdout.cases if self.holdout else {}), **self.cases}


def split_sql(script: str) -> list[str]:
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


def to_postgres(sql: str) -> str:
    """The PostgreSQL spelling of a portable statement: identity keys, 8-byte floats, %s params."""
    sql = re.sub(r"\bINTEGER PRIMARY KEY\b", "INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", sql)
    sql = re.sub(r"\bREAL\b", "DOUBLE PRECISION", sql)
    return sql.replace("%", "%%").replace("?", "%s")


def attempt_row(r: Mapping[str, Any]) -> AttemptRow:
    """An AttemptRow from one row of SELECT_ATTEMPTS (sqlite3.Row or a name → value mapping)."""
    cases = {name: CaseResult.from_dict(d) for name, d in json.loads(r["cases"] or "{}").items()}
    cost = None if r["u_unknown"] else float(r["u_cost"])
    # A read-only view of a store written before migration 3 has no owner columns.
    owner = f"{r['owner_host']}:{r['owner_pid']}" if "owner_host" in r.keys() and r["owner_host"] else ""
    details = json.loads(r["details"] or "{}")
    if "holdout_cases" in r.keys():
        holdout = None if r["holdout_ok"] is None and r["holdout_speedup"] is None and r["holdout_cases"] is None \
            else Holdout(None if r["holdout_ok"] is None else bool(r["holdout_ok"]), r["holdout_speedup"],
                         _case_results(r["holdout_cases"]))
    else:
        holdout = Holdout.from_details(details)  # a read-only view of a store from before migration 7
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
        usage=Usage(int(r["u_prompt"]), int(r["u_completion"]), int(r["u_cached"]), cost),
        details=details,
        owner=owner,
        accepting=r["accepting"] if "accepting" in r.keys() else None,
        holdout=holdout,
    )
