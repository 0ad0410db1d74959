"""The store: the single source of truth of one experiment (SQLite, WAL, numbered migrations).

CONTRACT STUB — signatures are fixed; bodies are to be implemented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from looplab.records import CaseResult, Decision, Evaluation, Outcome, Usage


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


class Store:
    def __init__(self, path: Path) -> None:
        """Open (creating dirs/file) and migrate. WAL mode; every write commits immediately."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # --- attempts ---
    def begin_attempt(self, *, model: str, parent_id: int | None = None, details: dict | None = None) -> int:
        """Insert an in-flight row (outcome NULL) and return its id: 1, 2, 3 ... continuing after restarts."""
        raise NotImplementedError

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
        """Record the end of an attempt (one transaction). speedup/ci come from decision when given."""
        raise NotImplementedError

    def record_baseline(self, *, source: str, evaluation: Evaluation, metric: float | None, model: str = "") -> int:
        """Store attempt 0 (outcome 'baseline'): the seed the search starts from. Returns 0."""
        raise NotImplementedError

    def mark_interrupted(self) -> list[int]:
        """Rows still in flight (a crash or kill -9) become 'interrupted'; returns their ids."""
        raise NotImplementedError

    def set_commit(self, attempt_id: int, commit: str) -> None:
        raise NotImplementedError

    def attempt(self, attempt_id: int) -> AttemptRow | None:
        raise NotImplementedError

    def attempts(self, *, outcomes: list[Outcome] | None = None, limit: int | None = None,
                 newest_first: bool = False) -> list[AttemptRow]:
        """Finished and in-flight attempts, id order (or newest first), optionally filtered by outcome."""
        raise NotImplementedError

    def baseline(self) -> AttemptRow | None:
        raise NotImplementedError

    def incumbent(self) -> AttemptRow | None:
        """The newest 'accepted' attempt, or the baseline when none."""
        raise NotImplementedError

    def winners(self) -> list[AttemptRow]:
        """Accepted and specialist attempts (not the baseline), id order."""
        raise NotImplementedError

    def outcome_counts(self) -> dict[str, int]:
        """Finished attempts (baseline excluded) by outcome value."""
        raise NotImplementedError

    def find_by_hash(self, source_hash: str) -> AttemptRow | None:
        """The earliest attempt whose normalised source hash is source_hash."""
        raise NotImplementedError

    # --- model calls and cost ---
    def record_call(self, *, attempt_id: int | None, model: str, kind: str, usage: Usage,
                    latency_s: float, error: str | None = None) -> None:
        """One model call (kind: 'propose', 'reflect', ...); failed calls are recorded too."""
        raise NotImplementedError

    def usage_total(self) -> Usage:
        """Sum over all calls; cost_usd is None when any call's price was unknown."""
        raise NotImplementedError

    # --- meta and reset ---
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        raise NotImplementedError

    def set_meta(self, key: str, value: str) -> None:
        raise NotImplementedError

    def schema_version(self) -> int:
        raise NotImplementedError
