"""The noisy-score rule: replicates of candidate and incumbent, paired and interleaved, on fresh inputs.

Each round's value is the mean over cases of the score; the gain is the mean per-round difference with
a Student's t interval, decided at the same sequential looks and confirmed by a second session, like
timing. No timing lock: a score does not need a quiet machine.
"""

from __future__ import annotations

import statistics

from looplab.acceptance import Incumbent, Rule, Session, paired, scores
from looplab.acceptance.stats import decision_confidence, difference_decision, look_points
from looplab.config import ObjectiveConfig
from looplab.executors import Executor
from looplab.records import CaseComparison, Evaluation


class NoisyScoreRule:
    rule = Rule.NOISY_SCORE
    confirms = True

    def __init__(self, evaluator: Executor, objective: ObjectiveConfig, direction: str):
        self.evaluator, self.objective, self.direction = evaluator, objective, direction
        self.plan = self._plan(look_points(objective.rounds, objective.max_rounds))

    def _plan(self, looks: list[int]) -> paired.Plan:
        def decide(cand: list[float], inc: list[float], conf: float):
            return difference_decision(cand, inc, confidence=conf, direction=self.direction,
                                       threshold=scores.threshold(self.objective, statistics.fmean(inc)))
        return paired.Plan(looks=looks, confidence=self.objective.confidence, decide=decide,
                           values=lambda ev: scores.values_of(ev, self.objective.metric),
                           aggregate=statistics.fmean, timed=False)

    async def session(self, candidate: str, incumbent: Incumbent, cases: list[str], *,
                      validation: Evaluation | None = None, decisive: bool = False) -> Session:
        plan = self._plan([max(self.objective.rounds, 2)]) if decisive else self.plan
        s = await paired.interleaved(self.evaluator, candidate, incumbent.source, cases, plan,
                                     sequential=not decisive)
        return scores.as_factors(s, self.direction)

    def merge(self, first: Session, second: Session) -> Session:
        return scores.as_factors(paired.merge(self.plan, first, second), self.direction)

    def per_case(self, session: Session) -> dict[str, CaseComparison]:
        conf = decision_confidence(self.objective.confidence, len(self.plan.looks), max(len(session.candidate), 1))
        return scores.per_case(session, self.objective, self.direction, conf)

    def case_wins(self, comparison: CaseComparison) -> bool:
        return scores.case_wins(comparison, self.objective)

    def describe(self, session: Session) -> str:
        return scores.describe(session, self.objective.unit)
