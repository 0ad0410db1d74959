"""runs/<attempt>/: the human-readable trail of each attempt (prompt, reply, candidate, result)."""

from __future__ import annotations

import json
from pathlib import Path

from looplab.config import Experiment
from looplab.filesets import write_atomic
from looplab.layout import RESULT_FILE
from looplab.store import AttemptRow


def attempt_dir(experiment: Experiment, attempt_id: int) -> Path:
    return experiment.runs_dir / f"{attempt_id:04d}"


def write(run_dir: Path, name: str, text: str) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / name
    write_atomic(path, text)  # a kill mid-write never leaves half a result.json
    return path


def result_dict(experiment: Experiment, row: AttemptRow) -> dict:
    """The attempt's record as runs/ shows it. Holdout case names never appear here."""
    hidden = set(experiment.holdout_cases)
    return {
        "attempt": row.id,
        "outcome": row.outcome.value if row.outcome else None,
        "reason": row.reason,
        "model": row.model,
        "strategy": row.strategy,
        "tags": row.tags,
        "metric": row.metric,
        "unit": experiment.config.objective.unit,
        "speedup": row.speedup,
        "ci": [row.ci_low, row.ci_high] if row.ci_low is not None else None,
        "commit": row.commit,
        "usage": row.usage.to_dict(),
        "cases": {name: case.to_dict() for name, case in row.cases.items() if name not in hidden},
        "decision": {k: v for k, v in row.decision.items() if k != "holdout"},
        "details": {**row.details, **_holdout_summary(row)},
        "started_at": row.started_at,
        "ended_at": row.ended_at,
    }


def _holdout_summary(row: AttemptRow) -> dict:
    """Whether the candidate held on the hidden cases, and its gain there; never their names."""
    return {} if row.holdout is None else {"holdout_ok": row.holdout.ok, "holdout_speedup": row.holdout.speedup}


def write_result(experiment: Experiment, row: AttemptRow) -> Path:
    return write(attempt_dir(experiment, row.id), RESULT_FILE, json.dumps(result_dict(experiment, row), indent=2))
