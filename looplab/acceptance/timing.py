"""The timing rule: candidate and incumbent timed interleaved under the machine-wide lock.

Per round, each side's value is the geometric mean over cases of the run's median time; the speedup
is exp(mean per-round log ratio) with a Student's t interval. A win needs the interval's lower end
above 1 + min_gain, at a level that keeps identical code's acceptance within the budget, and a
second, independent session that agrees.
"""

from __future__ import annotations

import statistics

from looplab.acceptance import Incumbent, Rule, Session, paired
from looplab.acceptance.stats import (
    compare_case,
    decision_confidence,
    format_speedup,
    geomean,
    log_gains,
    look_points,
    paired_decision,
)
from looplab.config import ObjectiveConfig
from looplab.executors import Executor
from looplab.records import CaseComparison, Evaluation


def run_samples(ev: Evaluation) -> dict[str, list[float]]:
    # The first sample of a run warms caches and page tables: dropped when enough remain.
    return {c: (r.samples[1:] if len(r.samples) >= 3 else list(r.samples)) for c, r in ev.cases.items()}


def round_value(values: list[float]) -> float:
    return geomean(values) if all(v > 0 for v in values) else statistics.fmean(values)


class TimingRule:
    rule = Rule.TIMING
    confirms = True

    def __init__(self, evaluator: Executor, objective: ObjectiveConfig, direction: str):
        self.evaluator, self.objective, self.direction = evaluator, objective, direction
        self.plan = self._plan(look_points(objective.rounds, objective.max_rounds))

    def _plan(self, looks: list[int]) -> paired.Plan:
        def decide(cand: list[float], inc: list[float], conf: float):
            return paired_decision(cand, inc, confidence=conf, min_gain=self.objective.min_gain,
                                   direction=self.direction)
        return paired.Plan(looks=looks, confidence=self.objective.confidence, decide=decide,
                           values=run_samples, aggregate=round_value, timed=True)

    async def session(self, candidate: str, incumbent: Incumbent, cases: list[str], *,
                      validation: Evaluation | None = None, decisive: bool = False) -> Session:
        plan = self._plan([max(self.objective.rounds, 2)]) if decisive else self.plan
        s = await paired.interleaved(self.evaluator, candidate, incumbent.source, cases, plan, sequential=not decisive)
        names = cases or sorted(set(s.candidate) & set(s.incumbent))
        if s.failure is None:
            s.round_gains = log_gains(paired.series(s.candidate, names, s.rounds, round_value),
                                      paired.series(s.incumbent, names, s.rounds, round_value), self.direction)
        return s

    def merge(self, first: Session, second: Session) -> Session:
        return paired.merge(self.plan, first, second)

    def per_case(self, session: Session) -> dict[str, CaseComparison]:
        conf = decision_confidence(self.objective.confidence, len(self.plan.looks), max(len(session.candidate), 1))
        return {c: compare_case(session.candidate[c], session.incumbent[c], confidence=conf,
                                direction=self.direction, case=c) for c in sorted(session.candidate)}

    def case_wins(self, comparison: CaseComparison) -> bool:
        return comparison.ci_low > 1.0 + self.objective.min_gain

    def describe(self, session: Session) -> str:
        return format_speedup(session.estimate, session.low, session.high)

