"""Attempt 0: the seed evaluated once (search and holdout cases), and which score rule will decide."""

from __future__ import annotations

from typing import Protocol

from looplab.acceptance import objective_value
from looplab.acceptance.choose import measure_noise
from looplab.config import Experiment
from looplab.errors import UserError
from looplab.executors import Executor
from looplab.propose.extract import source_hash
from looplab.store import AttemptRow, Store


class Notes(Protocol):
    def note(self, text: str) -> None: ...


async def ensure_baseline(experiment: Experiment, store: Store, evaluator: Executor,
                          progress: Notes | None = None, source: str | None = None) -> AttemptRow:
    """The recorded baseline, evaluating the seed first if there is none. A broken seed is a user error."""
    existing = store.baseline()
    if existing is not None:
        return existing
    async with store.acceptance_lock():  # loops starting together measure the baseline once
        return store.baseline() or await _record_baseline(experiment, store, evaluator, progress, source)


async def _record_baseline(experiment: Experiment, store: Store, evaluator: Executor,
                           progress: Notes | None, source: str | None) -> AttemptRow:
    source = source if source is not None else experiment.baseline_source
    if progress:
        progress.note(f"evaluating the baseline {experiment.config.target.baseline} ...")
    evaluation = await evaluator.evaluate(source, experiment.search_cases + experiment.holdout_cases)
    if not evaluation.ok:
        first = evaluation.reason.splitlines()[0] if evaluation.reason else ""
        raise UserError(f"{experiment.baseline_path}: the baseline fails its own evaluation: "
                        f"{evaluation.failure} {first} (fix: make the baseline build and pass the harness)")
    metric = objective_value(experiment.config.objective, evaluation.cases,
                             experiment.search_cases or list(evaluation.cases))
    noise = await measure_noise(experiment, evaluator, source, evaluation)  # which score rule will decide
    store.record_baseline(source=source, evaluation=evaluation, metric=metric,
                          source_hash=source_hash(source, experiment.language), extra={"noise": noise.value})
    baseline = store.baseline()
    assert baseline is not None
    return baseline
