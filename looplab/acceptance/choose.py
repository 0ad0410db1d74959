"""Which rule decides for an experiment: from its objective and the noise its baseline showed."""

from __future__ import annotations

from looplab.acceptance import AcceptanceRule, Noise
from looplab.acceptance.deterministic_score import DeterministicScoreRule
from looplab.acceptance.noisy_score import NoisyScoreRule
from looplab.acceptance.scores import values_of
from looplab.acceptance.timing import TimingRule
from looplab.config import Experiment, NoiseSetting, ObjectiveKind
from looplab.errors import UserError
from looplab.executors import Executor
from looplab.records import Evaluation


def configured_noise(experiment: Experiment, measured: str | None) -> Noise:
    """The experiment's noise setting, else what the baseline showed; unknown counts as noisy (the safe side)."""
    said = experiment.config.objective.noise
    if said != "auto":
        return Noise(said)
    return Noise(measured) if measured in (Noise.DETERMINISTIC, Noise.NOISY) else Noise.NOISY


def rule_for(experiment: Experiment, evaluator: Executor, measured_noise: str | None = None) -> AcceptanceRule:
    objective = experiment.config.objective
    direction = evaluator.direction
    if objective.kind is ObjectiveKind.JUDGED:
        from looplab.acceptance import pairwise
        from looplab.acceptance.judged import JudgedRule

        return JudgedRule(evaluator, objective, pairwise.judge_for(experiment))
    if objective.is_time:
        return TimingRule(evaluator, objective, direction)
    if configured_noise(experiment, measured_noise) == Noise.DETERMINISTIC:
        return DeterministicScoreRule(evaluator, objective, direction)
    return NoisyScoreRule(evaluator, objective, direction)


async def measure_noise(experiment: Experiment, evaluator: Executor, source: str, first: Evaluation) -> Noise:
    """Evaluate `source` once more (fresh inputs) and compare with `first`: the same values on every
    case make the score deterministic. Time objectives are noisy by nature and are not measured."""
    objective = experiment.config.objective
    if objective.kind is ObjectiveKind.JUDGED:
        _check_outputs(experiment, first)
        return Noise.NOISY  # the judge compares outputs; a second run would tell nothing
    if objective.is_time:
        return Noise.NOISY
    if objective.noise is not NoiseSetting.AUTO:
        return Noise(objective.noise)
    metric = experiment.config.objective.metric
    cases = [c for c in first.cases if c in evaluator.search_cases] or list(first.cases)
    again = await evaluator.evaluate(source, cases)
    if not again.ok:
        return Noise.NOISY
    a, b = values_of(first, metric), values_of(again, metric)
    same = all(c in a and c in b and a[c] == b[c] for c in cases)
    return Noise.DETERMINISTIC if same else Noise.NOISY


def _check_outputs(experiment: Experiment, first: Evaluation) -> None:
    missing = [name for name, case in first.cases.items() if "output" not in case.metrics]
    if missing:
        raise UserError(f"{experiment.root / 'experiment.toml'}: field 'objective.kind': judged, but the evaluator's "
                        f'line for case {missing[0]} has no "output" (fix: print each case\'s output to be judged, '
                        'e.g. {"case": ..., "ok": true, "output": ..., "input": ...})')
