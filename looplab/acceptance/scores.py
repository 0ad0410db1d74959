"""What the two score rules share: a case's value, the gain threshold, and the factor view of a gain."""

from __future__ import annotations

import math
import statistics

from looplab.acceptance import Session
from looplab.acceptance.stats import case_value, difference_decision
from looplab.config import ObjectiveConfig
from looplab.records import CaseComparison, Evaluation


def values_of(ev: Evaluation, metric: str) -> dict[str, list[float]]:
    """One value per case of one evaluation (a case without the metric is left out)."""
    out: dict[str, list[float]] = {}
    for name, case in ev.cases.items():
        v = case_value(case, metric)
        if v is not None:
            out[name] = [v]
    return out


def threshold(objective: ObjectiveConfig, incumbent_value: float) -> float:
    """The gain a candidate must clear, in the metric's unit: absolute, or relative to the incumbent."""
    return max(objective.min_gain_abs, (objective.min_gain or 0.0) * abs(incumbent_value))


def _scale(incumbent_value: float) -> float:
    return abs(incumbent_value) if incumbent_value != 0 else 1.0


def factor(gain: float, incumbent_value: float) -> float:
    """A gain as "x" factor: 1 + gain relative to the incumbent (x1.12 = 12% better)."""
    return 1.0 + gain / _scale(incumbent_value) if math.isfinite(gain) else (math.inf if gain > 0 else 0.0)


def as_factors(s: Session, direction: str) -> Session:
    """Fill the session's aggregate values and turn its (status, gain, low, high) into factors."""
    names = sorted(set(s.candidate) & set(s.incumbent))
    if not names or s.failure is not None:
        return s
    cand = statistics.fmean(statistics.median(x for r in s.candidate[c] for x in r) for c in names)
    inc = statistics.fmean(statistics.median(x for r in s.incumbent[c] for x in r) for c in names)
    s.candidate_value, s.incumbent_value = cand, inc
    s.gain, s.gain_low, s.gain_high = s.estimate, s.low, s.high
    s.estimate, s.low, s.high = factor(s.estimate, inc), factor(s.low, inc), factor(s.high, inc)
    sign = 1.0 if direction == "maximize" else -1.0
    s.round_gains = [sign * (statistics.fmean(r_c) - statistics.fmean(r_i)) for r_c, r_i in zip(
        *(_rounds(store, names, s.rounds) for store in (s.candidate, s.incumbent)), strict=True)]
    return s


def _rounds(store: dict[str, list[list[float]]], names: list[str], rounds: int) -> list[list[float]]:
    return [[statistics.median(store[c][r]) for c in names] for r in range(rounds)]


def per_case(s: Session, objective: ObjectiveConfig, direction: str, confidence: float) -> dict[str, CaseComparison]:
    out = {}
    for c in sorted(set(s.candidate) & set(s.incumbent)):
        n = min(len(s.candidate[c]), len(s.incumbent[c]))
        cand = [statistics.median(r) for r in s.candidate[c][:n]]
        inc = [statistics.median(r) for r in s.incumbent[c][:n]]
        inc_value = statistics.fmean(inc)
        _, gain, low, high = difference_decision(cand, inc, confidence=confidence,
                                                 threshold=threshold(objective, inc_value), direction=direction)
        out[c] = CaseComparison(case=c, speedup=factor(gain, inc_value), ci_low=factor(low, inc_value),
                                ci_high=factor(high, inc_value), candidate_median=statistics.median(cand),
                                incumbent_median=statistics.median(inc), rounds=n)
    return out


def case_wins(comparison: CaseComparison, objective: ObjectiveConfig) -> bool:
    inc = comparison.incumbent_median
    gain_low = (comparison.ci_low - 1.0) * _scale(inc)
    return gain_low > threshold(objective, inc)


def describe(s: Session, unit: str) -> str:
    """"0.4700 vs 0.4200: +0.0500 [+0.0310, +0.0690] (x1.12)" — values in the metric's unit."""
    if s.candidate_value is None or s.incumbent_value is None or s.gain is None:
        return f"x{s.estimate:.2f}"
    u = f" {unit}" if unit and unit != "score" else ""
    interval = "" if s.gain_low == s.gain_high else f" [{s.gain_low:+.4g}, {s.gain_high:+.4g}]"
    return (f"{s.candidate_value:.6g}{u} vs {s.incumbent_value:.6g}{u}: {s.gain:+.4g}{interval} "
            f"(x{s.estimate:.3f})")

