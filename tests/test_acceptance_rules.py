"""Acceptance rules for score objectives: deterministic and noisy, through the real judge and harness
processes, plus simulated A/A trials for the noisy rule's false-acceptance budget."""

from __future__ import annotations

import ast
import asyncio
import random
import shutil
from pathlib import Path

import pytest
from eval_helpers import private_dir
from score_helpers import score_experiment

from looplab.acceptance import Incumbent, Rule
from looplab.acceptance.choose import measure_noise, rule_for
from looplab.acceptance.judge import confirmed_session, judge
from looplab.acceptance.noisy_score import NoisyScoreRule
from looplab.acceptance.stats import Status
from looplab.config import Experiment
from looplab.evaluation.assess import evaluate_file
from looplab.evaluation.evaluator import Evaluator
from looplab.records import CaseResult, Evaluation, Outcome


@pytest.fixture(scope="module")
def root() -> Path:
    d = private_dir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


class CountingEvaluator(Evaluator):
    def __init__(self, exp: Experiment):
        super().__init__(exp)
        self.sources: list[str] = []

    async def evaluate(self, source, cases, **kw):
        self.sources.append(source)
        return await super().evaluate(source, cases, **kw)


def run(exp: Experiment, candidate: str, *, evaluator: Evaluator | None = None):
    evaluator = evaluator or Evaluator(exp)
    base = asyncio.run(evaluator.evaluate(exp.baseline_source, exp.search_cases + exp.holdout_cases))
    noise = asyncio.run(measure_noise(exp, evaluator, exp.baseline_source, base))
    if isinstance(evaluator, CountingEvaluator):
        evaluator.sources.clear()
    return noise, asyncio.run(judge(exp, evaluator, candidate_source=candidate, incumbent_source=exp.baseline_source,
                                    best_case_medians={}, incumbent_cases=base.cases, noise=noise.value))


@pytest.fixture(scope="module")
def exact(root: Path) -> Experiment:
    return score_experiment(root, name="exact")


def test_a_deterministic_score_accepts_half_a_percent_with_one_evaluation(exact: Experiment) -> None:
    evaluator = CountingEvaluator(exact)
    noise, v = run(exact, '{"all": 100.5}', evaluator=evaluator)
    d = v.decision
    assert noise == "deterministic" and d.rule == Rule.DETERMINISTIC_SCORE
    assert d.outcome == Outcome.ACCEPTED, d.reason
    assert d.gain == pytest.approx(0.5) and d.candidate_value == pytest.approx(100.5)
    assert "100.5 points vs 100 points: +0.5" in d.reason and "better" in d.reason and "faster" not in d.reason
    # validation (the measurement), the reproduction that confirms it, the holdout case: no incumbent re-run
    assert evaluator.sources == ['{"all": 100.5}'] * 3


@pytest.mark.parametrize("candidate, words", [('{"all": 100.0}', "equal, not better"),
                                              ('{"all": 99.0}', "worse")])
def test_a_deterministic_score_refuses_equal_and_worse(exact: Experiment, candidate: str, words: str) -> None:
    evaluator = CountingEvaluator(exact)
    _, v = run(exact, candidate, evaluator=evaluator)
    assert v.decision.outcome == Outcome.SLOWER and words in v.decision.reason, v.decision.reason
    assert len(evaluator.sources) == 1  # one evaluation per candidate that does not win


def test_a_candidate_whose_score_moves_cannot_win_on_a_lucky_draw(exact: Experiment) -> None:
    _, v = run(exact, '{"all": 100.0, "noise": 5.0, "a": 103.0}')
    if v.decision.outcome != Outcome.SLOWER:  # a lucky first draw must fail to reproduce
        pytest.fail(v.decision.reason)
    # whichever way the first draw fell, it was not accepted; when it looked better, the reason says why
    assert "not deterministic" in v.decision.reason or "worse" in v.decision.reason or "equal" in v.decision.reason


def test_min_gain_abs_is_in_the_metric_unit(root: Path) -> None:
    exp = score_experiment(root, name="abs", objective="min_gain_abs = 1.0")
    assert run(exp, '{"all": 100.5}')[1].decision.outcome == Outcome.SLOWER
    assert run(exp, '{"all": 101.5}')[1].decision.outcome == Outcome.ACCEPTED


def test_minimize_and_a_named_metric(root: Path) -> None:
    exp = score_experiment(root, name="named", direction="minimize", objective='metric = "quality"')
    _, better = run(exp, '{"all": 90.0}')  # quality 9.0 < 10.0
    assert better.decision.outcome == Outcome.ACCEPTED and better.decision.candidate_value == pytest.approx(9.0)
    assert run(exp, '{"all": 110.0}')[1].decision.outcome == Outcome.SLOWER


def test_wrong_on_holdout_is_overfit_for_a_score(exact: Experiment) -> None:
    _, v = run(exact, '{"all": 101.0, "fail": {"hidden_case_7": "bad"}}')
    assert v.decision.outcome == Outcome.OVERFIT and "hidden_case_7" not in v.decision.reason


def test_a_specialist_on_a_deterministic_score(exact: Experiment) -> None:
    _, v = run(exact, '{"all": 99.0, "b": 110.0}')  # mean 102.67 > 100: accepted overall
    assert v.decision.outcome == Outcome.ACCEPTED
    _, v = run(exact, '{"all": 95.0, "b": 101.0}')  # mean lower, best on b
    assert v.decision.outcome == Outcome.SPECIALIST and v.decision.best_cases == ["b"], v.decision.reason


@pytest.fixture(scope="module")
def noisy(root: Path) -> Experiment:
    return score_experiment(root, name="noisy", baseline='{"all": 100.0, "noise": 1.0}',
                            objective="rounds = 3\nmax_rounds = 6")


def test_a_noisy_score_is_measured_in_replicates(noisy: Experiment) -> None:
    noise, v = run(noisy, '{"all": 104.0, "noise": 1.0}')
    d = v.decision
    assert noise == "noisy" and d.rule == Rule.NOISY_SCORE
    assert d.outcome == Outcome.ACCEPTED, d.reason
    assert d.rounds >= 6 and 2.0 < d.gain < 6.0 and d.gain_low > 0 and "[+" in d.reason


def test_a_noisy_score_refuses_identical_code(noisy: Experiment) -> None:
    _, v = run(noisy, '{"all": 100.0, "noise": 1.0} ')
    assert v.decision.outcome == Outcome.SLOWER and v.decision.rule == Rule.NOISY_SCORE


class SimulatedScores:
    """In-process stand-in for an evaluator whose score has Gaussian noise: only for counting A/A
    verdicts over many trials (the real harness path is tested above)."""

    direction = "maximize"
    search_cases = ["a", "b", "c"]
    holdout_cases: list[str] = []

    def __init__(self, rng: random.Random, sd: float):
        self.rng, self.sd = rng, sd

    async def build(self, source: str) -> None:
        return None

    async def evaluate(self, source: str, cases: list[str], **kw) -> Evaluation:
        mean = ast.literal_eval(source)["all"]
        return Evaluation(ok=True, cases={c: CaseResult(case=c, ok=True, samples=[self.rng.gauss(mean, self.sd)])
                                          for c in cases})


def test_noisy_rule_false_accepts_stay_within_budget_over_many_trials(noisy: Experiment) -> None:
    rng = random.Random(20261130)
    rule = NoisyScoreRule(SimulatedScores(rng, 1.0), noisy.config.objective, "maximize")
    source, trials = '{"all": 100.0}', 400
    accepted = sum(asyncio.run(confirmed_session(rule, source, Incumbent(source), ["a", "b", "c"])).status
                   == Status.BETTER for _ in range(trials))
    # budget: (1 - 0.95) * 0.2 = 1% of trials; 400 trials at 1% would give 4 (<= 10 with 99.8% probability)
    assert accepted <= 10, accepted
    found = sum(asyncio.run(confirmed_session(rule, '{"all": 102.0}', Incumbent(source), ["a", "b", "c"])).status
                == Status.BETTER for _ in range(100))
    assert found >= 80, found  # a 2-sd gain is found nearly always


def test_looplab_eval_records_the_noise_and_the_rule(root: Path) -> None:
    exp = score_experiment(root, name="evaled")
    (exp.root / "cand.py").write_text('{"all": 101.0}\n')
    result = asyncio.run(evaluate_file(exp, '{"all": 101.0}\n'))
    assert result["category"] == "accepted" and result["rule"] == "deterministic_score", result
    assert rule_for(exp, Evaluator(exp), "deterministic").rule == Rule.DETERMINISTIC_SCORE
