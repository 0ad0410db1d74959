"""Statistics: the t quantile, the paired comparison, the decision rule and its A/A error rate."""

from __future__ import annotations

import math
import random

import pytest

from looplab.acceptance.stats import (
    aggregate_metric,
    compare_case,
    decide_speedup,
    decision_confidence,
    format_speedup,
    look_points,
    min_detectable_gain,
    paired_decision,
    t_cdf,
    t_quantile,
)
from looplab.records import CaseComparison, CaseResult


@pytest.mark.parametrize("p, df, expected", [
    (0.975, 1, 12.7062), (0.975, 2, 4.3027), (0.975, 8, 2.3060), (0.995, 5, 4.0321), (0.9, 3, 1.6377),
    (0.975, 1000, 1.9623), (0.025, 4, -2.7764),
])
def test_t_quantile_matches_tables(p: float, df: int, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=2e-4)
    assert t_cdf(t_quantile(p, df), df) == pytest.approx(p, abs=1e-9)


def test_compare_case_identical_rounds_is_exactly_one() -> None:
    rounds = [[100.0, 101.0, 99.0], [102.0, 100.0, 98.0], [100.0, 100.0, 100.0]]
    cmp = compare_case(rounds, rounds, confidence=0.95, direction="minimize", case="x")
    assert (cmp.speedup, cmp.ci_low, cmp.ci_high) == (1.0, 1.0, 1.0)
    assert cmp.case == "x" and cmp.rounds == 3 and cmp.candidate_median == 100.0


def test_compare_case_recovers_a_known_ratio_and_direction() -> None:
    rng = random.Random(1)
    inc = [[200.0 * rng.gauss(1, 0.02) for _ in range(5)] for _ in range(6)]
    cand = [[100.0 * rng.gauss(1, 0.02) for _ in range(5)] for _ in range(6)]
    cmp = compare_case(cand, inc, confidence=0.95, direction="minimize")
    assert cmp.ci_low < 2.0 < cmp.ci_high and 1.9 < cmp.speedup < 2.1
    # Maximize: a bigger score is better, so the same numbers read as x0.5.
    flipped = compare_case(cand, inc, confidence=0.95, direction="maximize")
    assert flipped.speedup == pytest.approx(1 / cmp.speedup)


def test_compare_case_non_positive_scores_use_differences() -> None:
    cmp = compare_case([[-1.0], [-1.0]], [[-2.0], [-2.0]], confidence=0.95, direction="maximize")
    assert cmp.speedup == pytest.approx(math.e)  # better by one unit of score


def test_one_round_makes_no_claim() -> None:
    cmp = compare_case([[1.0]], [[2.0]], confidence=0.95, direction="minimize")
    assert cmp.ci_low == 0.0 and math.isinf(cmp.ci_high)
    assert decide_speedup([cmp], min_gain=0.01, confidence=0.95)[0] == "inconclusive"


def _cmp(speedup: float, low: float, high: float) -> CaseComparison:
    return CaseComparison("c", speedup, low, high, 1.0, 1.0, 3)


@pytest.mark.parametrize("cmp, status", [
    (_cmp(1.30, 1.20, 1.40), "better"),
    (_cmp(1.30, 1.005, 1.60), "inconclusive"),  # surely faster, not surely by min_gain
    (_cmp(1.005, 1.001, 1.009), "worse"),  # real but below min_gain
    (_cmp(1.30, 0.90, 1.80), "inconclusive"),  # could be a gain, noise too large yet
    (_cmp(0.97, 0.90, 1.05), "worse"),  # estimated slower: stop measuring
    (_cmp(0.50, 0.45, 0.55), "worse"),
])
def test_decide_speedup_statuses(cmp: CaseComparison, status: str) -> None:
    assert decide_speedup([cmp], min_gain=0.01, confidence=0.95)[0] == status


def test_decide_speedup_combines_cases_by_geometric_means() -> None:
    status, est, low, high = decide_speedup([_cmp(2.0, 1.5, 3.0), _cmp(0.5, 0.4, 0.6)], min_gain=0.01,
                                            confidence=0.95)
    assert est == pytest.approx(1.0) and low == pytest.approx(math.sqrt(0.6)) and status == "worse"


def test_look_points_and_confidence() -> None:
    assert look_points(3, 9) == [3, 6, 9]
    assert look_points(3, 7) == [3, 6, 7]
    assert look_points(1, 3) == [2, 3]  # one round cannot measure noise
    assert look_points(5, 3) == [5]
    # One-sided budget 1% at 0.95, split over looks (and comparisons).
    assert (1 - decision_confidence(0.95, 1)) / 2 == pytest.approx(0.01)
    assert (1 - decision_confidence(0.95, 3)) / 2 == pytest.approx(0.01 / 3)
    assert (1 - decision_confidence(0.95, 2, 3)) / 2 == pytest.approx(0.01 / 6)


def test_aggregate_metric_is_geometric_mean_of_medians() -> None:
    cases = {"a": CaseResult("a", True, [1.0, 4.0, 100.0]), "b": CaseResult("b", True, [16.0])}
    assert aggregate_metric(cases, ["a", "b"]) == pytest.approx(8.0)
    assert aggregate_metric(cases, []) == pytest.approx(8.0)
    assert aggregate_metric(cases, ["a", "missing"]) is None


def test_min_detectable_gain_shrinks_with_rounds_and_grows_with_noise() -> None:
    a = min_detectable_gain(0.05, rounds=3, confidence=0.99)
    assert min_detectable_gain(0.05, rounds=9, confidence=0.99) < a < min_detectable_gain(0.10, rounds=3, confidence=0.99)
    assert min_detectable_gain(0.0, rounds=9, confidence=0.99) == 0.0


def test_format_speedup() -> None:
    assert format_speedup(1.414, 1.368, 1.4549) == "x1.41 [1.37, 1.45]"


def _sequential(rng: random.Random, true_gain: float, noise: float, *, heavy: bool,
                rounds: int = 3, max_rounds: int = 9, confidence: float = 0.95, min_gain: float = 0.01) -> str:
    """The judge's sequential procedure on simulated per-round values (run-level noise, optional outliers)."""
    looks = look_points(rounds, max_rounds)
    conf = decision_confidence(confidence, len(looks))
    cand: list[float] = []
    inc: list[float] = []
    status = "inconclusive"
    for r in range(looks[-1]):
        def run() -> float:
            e = rng.gauss(0, noise)
            if heavy and rng.random() < 0.1:  # a run that lands on a busy moment
                e += abs(rng.gauss(0, 5 * noise))
            return math.exp(e)
        inc.append(100.0 * run())
        cand.append(100.0 / (1 + true_gain) * run())
        if r + 1 in looks:
            status = paired_decision(cand, inc, confidence=conf, min_gain=min_gain, direction="minimize")[0]
            if status != "inconclusive":
                break
    return status


@pytest.mark.parametrize("noise, heavy, rounds", [
    (0.002, False, 3), (0.02, False, 3), (0.3, False, 3), (0.02, True, 3), (0.3, False, 1), (0.05, True, 2)])
def test_identical_code_is_almost_never_accepted(noise: float, heavy: bool, rounds: int) -> None:
    """The budget holds whatever the noise: 1% at the defaults (expected well under, by Bonferroni)."""
    rng = random.Random(12345)
    trials = 3000
    accepted = sum(_sequential(rng, 0.0, noise, heavy=heavy, rounds=rounds) == "better" for _ in range(trials))
    assert accepted / trials <= 0.01


def test_a_real_gain_well_above_the_noise_is_found() -> None:
    rng = random.Random(7)
    found = sum(_sequential(rng, 0.10, 0.02, heavy=False) == "better" for _ in range(500))
    assert found / 500 >= 0.95
