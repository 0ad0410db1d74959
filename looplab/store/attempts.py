"""Writing attempts: begin, finish, the baseline, discarding, and the commit of a winner.

Part of the Store (core.py), over its backend: every write is one transaction, so a kill -9 loses at
most the attempt in flight, and a read-only store refuses each one (ReadOnlyStoreError).
"""

from __future__ import annotations

import json
import time
from typing import Any

from looplab.records import Decision, Evaluation, Outcome
from looplab.store.backend import Backend
from looplab.store.owner import Owner
from looplab.store.schema import LOG_CHARS, Holdout


def evaluation_details(evaluation: Evaluation) -> dict[str, Any]:
    """What of an evaluation lands in details: its seed, wall time, (capped) log, and why it failed."""
    extra: dict[str, Any] = {"seed": evaluation.seed, "wall_s": evaluation.wall_s, "log": evaluation.log[-LOG_CHARS:]}
    if evaluation.failure is not None:
        extra["eval_failure"] = evaluation.failure.value
    if evaluation.reason:
        extra["eval_reason"] = evaluation.reason
    return extra


def holdout_columns(holdout: Holdout | None) -> tuple[int | None, float | None, str | None]:
    """holdout_ok, holdout_speedup, holdout_cases as stored (all NULL without holdout results)."""
    if holdout is None:
        return None, None, None
    ok = None if holdout.ok is None else int(bool(holdout.ok))
    return ok, holdout.speedup, json.dumps({n: c.to_dict() for n, c in holdout.cases.items()})


class AttemptLog:
    """The attempts table's writes (mixed into Store)."""

    backend: Backend
    owner: Owner

    def begin_attempt(self, *, model: str, parent_id: int | None = None, details: dict | None = None) -> int:
        """Insert an in-flight row (outcome NULL) and return its id: 1, 2, 3 ... continuing after restarts."""
        with self.backend.transaction():
            self.backend.lock_ids()  # the id is max + 1, computed and taken while no other loop can take one
            row = self.backend.execute(
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
        holdout: Holdout | None = None,
    ) -> None:
        """Record the end of an attempt (one transaction). speedup/ci come from decision when given.

        reason defaults to the decision's, then the evaluation's; the evaluation's seed, wall
        time and (capped) log land in details unless details already name them. accepting: the
        key of a winner's acceptance still to archive and commit (end_acceptance clears it).
        holdout: the candidate's results on the hidden holdout cases (columns of their own); the old
        details keys holdout_ok / holdout_speedup / holdout_cases are still taken when holdout is None.
        """
        extra = evaluation_details(evaluation) if evaluation is not None else {}
        extra.update(details or {})
        legacy = Holdout.from_details(extra)  # pops the old keys: they never land in details again
        holdout = holdout if holdout is not None else legacy
        if not reason:
            reason = (decision.reason if decision else "") or (evaluation.reason if evaluation else "")
        cases = {n: c.to_dict() for n, c in evaluation.cases.items()} if evaluation else {}
        with self.backend.transaction():
            old = self.backend.execute("SELECT details FROM attempts WHERE id = ?", (attempt_id,)).fetchone()
            if old is None:
                raise KeyError(f"no attempt {attempt_id} in {self}")
            merged = {**json.loads(old["details"] or "{}"), **extra}
            self.backend.execute(
                """UPDATE attempts SET ended_at = ?, outcome = ?, reason = ?, source = ?, source_hash = ?,
                   strategy = ?, tags = ?, cases = ?, decision = ?, metric = ?, speedup = ?, ci_low = ?,
                   ci_high = ?, commit_hash = COALESCE(?, commit_hash), details = ?, accepting = ?,
                   holdout_ok = ?, holdout_speedup = ?, holdout_cases = ? WHERE id = ?""",
                (
                    time.time(), Outcome(outcome).value, reason, source, source_hash, strategy,
                    json.dumps(tags or []), json.dumps(cases),
                    json.dumps(decision.to_dict() if decision else {}), metric,
                    decision.speedup if decision else None, decision.ci_low if decision else None,
                    decision.ci_high if decision else None, commit, json.dumps(merged), accepting,
                    *holdout_columns(holdout), attempt_id,
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
        seen = {"seed": evaluation.seed, "wall_s": evaluation.wall_s, "log": evaluation.log[-LOG_CHARS:]}
        details = json.dumps({**seen, **(extra or {})})
        with self.backend.transaction():
            # Upsert, not REPLACE: a delete would trip the foreign keys of attempts whose parent is 0.
            self.backend.execute(
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

    def discard_attempt(self, attempt_id: int) -> bool:
        """Forget an in-flight attempt that never really happened (e.g. the replay ran out).

        Its calls, if any, stay in the totals, detached. Finished attempts are history: returns False.
        """
        with self.backend.transaction():
            row = self.backend.execute("SELECT outcome FROM attempts WHERE id = ?", (attempt_id,)).fetchone()
            if row is None or row[0] is not None:
                return False
            self.backend.execute("UPDATE calls SET attempt_id = NULL WHERE attempt_id = ?", (attempt_id,))
            self.backend.execute("UPDATE attempts SET parent_id = NULL WHERE parent_id = ?", (attempt_id,))
            self.backend.execute("DELETE FROM attempts WHERE id = ?", (attempt_id,))
        return True

    def set_commit(self, attempt_id: int, commit: str) -> None:
        with self.backend.transaction():
            self.backend.execute("UPDATE attempts SET commit_hash = ? WHERE id = ?", (commit, attempt_id))

    def end_acceptance(self, attempt_id: int, commit: str) -> None:
        """The winner is archived and committed as `commit`: its acceptance is done."""
        with self.backend.transaction():
            self.backend.execute("UPDATE attempts SET commit_hash = ?, accepting = NULL WHERE id = ?",
                                 (commit, attempt_id))
