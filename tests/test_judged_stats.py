"""The judged rule's statistics: an exact sign test at the looks' level (Clopper-Pearson bounds of the
win share), and what it costs a position-blind coin-flip judge to be believed."""

from __future__ import annotations

import math
import random

import pytest

from looplab.acceptance.judged import _tail_at_least, decide, win_share_bounds
from looplab.acceptance.stats import Status, decision_confidence


@pytest.mark.parametrize("wins, n", [(0, 5), (3, 5), (5, 5), (9, 10), (10, 10), (14, 20), (17, 20), (60, 100)])
def test_the_lower_bound_clears_one_half_exactly_when_the_sign_test_rejects(wins: int, n: int) -> None:
    alpha = 0.005
    low, high = win_share_bounds(wins, n, alpha)
    assert 0.0 <= low <= wins / n <= high <= 1.0
    p_value = _tail_at_least(wins, n, 0.5)
    assert (low > 0.5) == (p_value < alpha)
    if 0 < wins:
        assert _tail_at_least(wins, n, low) == pytest.approx(alpha, rel=1e-6)
    if wins < n:
        assert 1 - _tail_at_least(wins + 1, n, high) == pytest.approx(alpha, rel=1e-6)


def test_ties_say_nothing_and_losses_stop_early() -> None:
    level = decision_confidence(0.95, 2)
    assert decide(0, 0, level, 0.0)[0] == Status.WORSE  # nothing told them apart
    assert decide(8, 0, level, 0.0)[0] == Status.BETTER  # 2^-8 < 0.005
    assert decide(7, 0, level, 0.0)[0] == Status.INCONCLUSIVE  # 2^-7 > 0.005
    assert decide(3, 3, level, 0.0)[0] == Status.WORSE
    status, est, low, high = decide(12, 1, level, 0.0)
    assert status == Status.BETTER and est == pytest.approx(12.5 / 1.5) and low > 1 and math.isfinite(high)
    assert decide(12, 1, level, min_gain=2.0)[0] != Status.BETTER  # odds must clear 1 + min_gain


def sequential(rng: random.Random, p_win: float, p_loss: float, cases: int = 5, looks=(2, 4)) -> Status:
    """One session of the rule on simulated verdicts: rounds of `cases` comparisons, decided at the looks."""
    level = decision_confidence(0.95, len(looks))
    wins = losses = 0
    for r in range(1, looks[-1] + 1):
        for _ in range(cases):
            u = rng.random()
            wins += u < p_win
            losses += p_win <= u < p_win + p_loss
        if r in looks:
            status = decide(wins, losses, level, 0.0)[0]
            if status != Status.INCONCLUSIVE:
                return status
    return status


def test_a_coin_flip_judge_is_believed_within_the_false_acceptance_budget() -> None:
    rng = random.Random(7)
    trials = 4000
    one = sum(sequential(rng, 0.35, 0.35) == Status.BETTER for _ in range(trials)) / trials
    confirmed = sum(sequential(rng, 0.35, 0.35) == Status.BETTER and sequential(rng, 0.35, 0.35) == Status.BETTER
                    for _ in range(trials)) / trials
    assert one <= 0.01  # (1 - 0.95) * 0.2, over both looks
    assert confirmed <= 0.002


def test_a_clearly_better_candidate_is_found() -> None:
    rng = random.Random(8)
    found = sum(sequential(rng, 0.8, 0.05) == Status.BETTER and sequential(rng, 0.8, 0.05) == Status.BETTER
                for _ in range(500)) / 500
    assert found >= 0.8
