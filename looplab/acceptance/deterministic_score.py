"""The deterministic-score rule: one evaluation per candidate, compared with the incumbent's recorded value.

Chosen when the baseline evaluated twice with different inputs gave the same values. Any gain beyond
the minimum (default: strictly better) wins; the confirming "session" evaluates the candidate once
more and must reproduce its values exactly, so a candidate that is itself random cannot win on a
lucky draw.
"""

from __future__ import annotations

import math
import statistics

from looplab.acceptance import Incumbent, Rule, Session, scores
from looplab.acceptance.stats import difference_decision
from looplab.config import ObjectiveConfig
from looplab.executors import Executor
from looplab.records import CaseComparison, Evaluation


class DeterministicScoreRule:
    rule = Rule.DETERMINISTIC_SCORE
    confirms = True  # by reproducing the candidate's values, not by measuring the incumbent again

    def __init__(self, evaluator: Executor, objective: ObjectiveConfig, direction: str):
        self.evaluator, self.objective, self.direction = evaluator, objective, direction

    async def session(self, candidate: str, incumbent: Incumbent, cases: list[str], *,
                      validation: Evaluation | None = None, decisive: bool = False) -> Session:
        metric = self.objective.metric
        ev = validation if validation is not None and all(c in validation.cases for c in cases) \
            else await self.evaluator.evaluate(candidate, cases)
        if not ev.ok:
            return Session(failure=ev, failed_side="candidate")
        recorded = scores.values_of(Evaluation(ok=True, cases=incumbent.cases), metric)
        if not all(c in recorded for c in cases):  # not recorded (an older store): measure it once
            inc_ev = await self.evaluator.evaluate(incumbent.source, cases)
            if not inc_ev.ok:
                return Session(failure=inc_ev, failed_side="incumbent")
            recorded = scores.values_of(inc_ev, metric)
        s = Session(candidate={c: [v] for c, v in scores.values_of(ev, metric).items() if c in cases},
                    incumbent={c: [recorded[c]] for c in cases}, rounds=1)
        names = sorted(set(s.candidate) & set(s.incumbent))
        cand = statistics.fmean(s.candidate[c][0][0] for c in names)
        inc = statistics.fmean(s.incumbent[c][0][0] for c in names)
        s.status, s.estimate, s.low, s.high = difference_decision(
            [cand], [inc], confidence=self.objective.confidence, direction=self.direction,
            threshold=scores.threshold(self.objective, inc))
        return scores.as_factors(s, self.direction)

    def merge(self, first: Session, second: Session) -> Session:
        if second.failure is not None:
            return second
        if second.candidate == first.candidate:
            return first
        # The candidate's own values moved: it is not deterministic. Both draws stay in the record, so
        # no case can claim a win from one of them either.
        s = Session(candidate={c: first.candidate[c] + second.candidate.get(c, []) for c in first.candidate},
                    incumbent={c: first.incumbent[c] * 2 for c in first.incumbent}, rounds=2, unconfirmed=True)
        names = sorted(set(s.candidate) & set(s.incumbent))
        cand = [statistics.fmean(s.candidate[c][r][0] for c in names) for r in range(2)]
        inc = [statistics.fmean(s.incumbent[c][r][0] for c in names) for r in range(2)]
        _, s.estimate, s.low, s.high = difference_decision(
            cand, inc, confidence=self.objective.confidence, direction=self.direction,
            threshold=scores.threshold(self.objective, inc[0]))
        return scores.as_factors(s, self.direction)

    def per_case(self, session: Session) -> dict[str, CaseComparison]:
        cases = scores.per_case(session, self.objective, self.direction, self.objective.confidence)
        if session.unconfirmed:  # its values moved: no case can claim a win on a deterministic rule
            for c in cases.values():
                c.ci_low, c.ci_high = 0.0, math.inf
        return cases

    def case_wins(self, comparison: CaseComparison) -> bool:
        return scores.case_wins(comparison, self.objective)

    def describe(self, session: Session) -> str:
        return scores.describe(session, self.objective.unit)
