"""`looplab eval`: one candidate file judged exactly as `run` would judge it, without recording it."""

from __future__ import annotations

import random

from looplab.config import Experiment
from looplab.executors import make_executor
from looplab.loop import RunOptions, Search, assess, ensure_baseline
from looplab.models.base import ModelError
from looplab.propose.context import novelty_index
from looplab.store import open_store


async def evaluate_file(experiment: Experiment, source: str, store_url: str | None = None) -> dict:
    """Judge one candidate source against the incumbent exactly as `run` would, without recording it."""
    store = open_store(experiment, store_url)
    try:
        evaluator = make_executor(experiment)
        await ensure_baseline(experiment, store, evaluator)
        incumbent = store.incumbent()
        assert incumbent is not None
        s = Search(experiment, store, evaluator, _NoModel(), RunOptions(loop=0),
                   novelty_index(store, experiment), random.Random(0))
        a = await assess(s, source, incumbent, judge_duplicates=True)
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
        "holdout_ok": a.details.get("holdout_ok"),
        "holdout_speedup": a.details.get("holdout_speedup"),
        "incumbent": incumbent.id,
    }


class _NoModel:
    """`eval` judges a file; no model is involved."""

    name = "none"

    async def complete(self, *args, **kwargs):
        raise ModelError("no model in `looplab eval`")
