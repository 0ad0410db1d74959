"""One candidate source assessed: novelty → screen → judge. Shared by `run` (loop.py) and `eval`.

The assessment never calls a model and never records anything; the loop records it, `eval` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from looplab import filesets
from looplab.acceptance import recorded_results
from looplab.acceptance.judge import judge
from looplab.config import Experiment
from looplab.errors import UserError
from looplab.evaluation.baseline import ensure_baseline
from looplab.executors import Executor, make_executor
from looplab.propose.context import best_case_medians, novelty_index
from looplab.propose.extract import source_hash
from looplab.records import Decision, Evaluation, Outcome
from looplab.screen.novelty import NoveltyIndex
from looplab.screen.policy import screen
from looplab.store import AttemptRow, Holdout, Store, open_store


@dataclass
class Assessment:
    """What the evaluator decided about one candidate source."""

    outcome: Outcome
    reason: str
    evaluation: Evaluation | None = None
    decision: Decision | None = None
    details: dict = field(default_factory=dict)
    holdout: Holdout | None = None  # the candidate on the hidden holdout cases, when it got that far


async def assess(experiment: Experiment, store: Store, evaluator: Executor, novelty: NoveltyIndex, source: str,
                 incumbent: AttemptRow, *, judge_duplicates: bool = False) -> Assessment:
    """Novelty → screen → judge for one candidate source against the given incumbent."""
    check = experiment.config.search.novelty
    earlier = earlier_same(experiment, store, source) if check else None
    near = novelty.nearest(source) if check and earlier is None else None
    duplicate = {}
    if earlier is not None:
        duplicate = {"duplicate_of": earlier, "reason": f"same program as attempt {earlier} (after "
                     "normalising whitespace and comments); propose something different"}
    elif near is not None:
        duplicate = {"duplicate_of": near[0], "similarity": round(near[1], 3),
                     "reason": f"near-duplicate of attempt {near[0]} (similarity {near[1]:.2f}); "
                     "propose something substantially different"}
    if duplicate and not judge_duplicates:
        return Assessment(Outcome.DUPLICATE, duplicate.pop("reason"), details=duplicate)
    baseline = store.baseline()
    verdict = screen(source, language=experiment.language, policy=experiment.config.screen,
                     baseline=baseline.source or "" if baseline else "")
    if verdict is not None:
        return Assessment(verdict.outcome, verdict.reason, details={"rule": verdict.rule})
    result = await judge(experiment, evaluator, candidate_source=source, incumbent_source=incumbent.source or "",
                         best_case_medians=best_case_medians(store, experiment),
                         incumbent_cases=recorded_results(incumbent.cases, incumbent.details),
                         noise=baseline.details.get("noise") if baseline else None)
    details: dict = {"judged_against": incumbent.id}
    holdout = None if result.holdout is None else Holdout(
        ok=result.holdout.ok, speedup=result.decision.holdout_speedup, cases=result.holdout.cases)
    outcome, reason = result.decision.outcome, result.decision.reason
    if duplicate:
        outcome, reason = Outcome.DUPLICATE, duplicate.pop("reason")
        details.update(duplicate)
    return Assessment(outcome, reason, evaluation=result.evaluation, decision=result.decision, details=details,
                      holdout=holdout)


def earlier_same(experiment: Experiment, store: Store, source: str) -> int | None:
    """Id of the earliest attempt (the baseline included) holding the same normalised program."""
    found = store.find_by_hash(source_hash(source, experiment.language))
    if found is None or found.outcome in (Outcome.INFRA_ERROR, Outcome.INTERRUPTED):
        return None  # the machinery failed, not the candidate: it deserves another try
    return found.id


async def evaluate_file(experiment: Experiment, source: str, store_url: str | None = None) -> dict:
    """`looplab eval`: judge one candidate source against the incumbent exactly as `run` would, unrecorded."""
    store = open_store(experiment, store_url)
    try:
        evaluator = make_executor(experiment)
        await ensure_baseline(experiment, store, evaluator)
        incumbent = store.incumbent()
        assert incumbent is not None
        a = await assess(experiment, store, evaluator, novelty_index(store, experiment), source, incumbent,
                         judge_duplicates=True)
    finally:
        store.close()
    d = a.decision
    cases = a.evaluation.cases if a.evaluation else {}
    return {
        "ok": bool(a.evaluation and a.evaluation.ok),
        "category": a.outcome.value,
        "reason": a.reason,
        "speedup": d.speedup if d else None,
        "ci": [d.ci_low, d.ci_high] if d and d.ci_low is not None else None,
        "rounds": d.rounds if d else 0,
        "rule": d.rule if d else None,
        "unit": experiment.config.objective.unit,
        "cases": {name: {"ok": c.ok, "median": c.median, "error": c.error, "metrics": c.metrics,
                         "speedup": d.cases[name].speedup if d and name in d.cases else None}
                  for name, c in cases.items()},
        "holdout_ok": a.holdout.ok if a.holdout else None,
        "holdout_speedup": a.holdout.speedup if a.holdout else None,
        "incumbent": incumbent.id,
    }


def read_candidate(experiment: Experiment, path: Path) -> str:
    """The candidate `eval` judges: a source file, or for a files target a folder holding the target's
    files (e.g. incumbent.files/, a winner) or their packed text."""
    if experiment.is_files:
        try:
            if path.is_dir():
                return filesets.read_tree(path, experiment.config.target.files)
            if path.is_file():
                text = path.read_text()
                given = filesets.unpack(text)
                if sorted(given) != sorted(experiment.config.target.files):
                    raise filesets.FilesError(f"it holds {sorted(given)}, not the target's files")
                return text
        except (OSError, filesets.FilesError) as e:
            raise UserError(f"{path}: not a candidate for this files target ({e}) (fix: pass a folder holding "
                            f"{', '.join(experiment.config.target.files)})") from None
        raise UserError(f"{path}: no such candidate folder (fix: pass a folder holding the target's files)")
    if not path.is_file():
        raise UserError(f"{path}: no such candidate file (fix: pass the path of a source file)")
    return path.read_text()
