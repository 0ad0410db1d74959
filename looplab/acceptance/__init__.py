"""Acceptance rules: how the evaluator decides "better" for an objective, one module per rule.

  timing               paired, interleaved timing under the machine-wide lock (time objectives)
  deterministic_score  one evaluation per candidate against the incumbent's recorded value
  noisy_score          replicates, paired and interleaved, under the same sequential, confirmed rule
  judged               a model compares outputs in both orders; per-case wins against losses, a sign test

Every rule reports a Session: where the comparison stands (Status), and its estimate and interval as
a factor ("x1.12" = 12% better, > 1 is better) so that records, SCORES and memory read the same for
every objective. looplab/acceptance/judge.py runs one flow over any rule: validate → session → confirm → holdout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from looplab.acceptance.stats import Status
from looplab.records import CaseComparison, CaseResult, Evaluation


class Rule(StrEnum):
    TIMING = "timing"
    DETERMINISTIC_SCORE = "deterministic_score"
    NOISY_SCORE = "noisy_score"
    JUDGED = "judged"


class Noise(StrEnum):
    """What the baseline showed when evaluated twice (score objectives)."""

    DETERMINISTIC = "deterministic"
    NOISY = "noisy"


@dataclass
class Incumbent:
    """What the candidate is judged against: its source and its recorded per-case results."""

    source: str
    cases: dict[str, CaseResult] = field(default_factory=dict)  # search and holdout, when recorded


@dataclass
class Session:
    """One measurement session of candidate vs incumbent: per case, per round, the run's values."""

    candidate: dict[str, list[list[float]]] = field(default_factory=dict)
    incumbent: dict[str, list[list[float]]] = field(default_factory=dict)
    rounds: int = 0
    failure: Evaluation | None = None  # a run that failed
    failed_side: str = ""  # "candidate", "incumbent" or "judge" (the judge model or the evaluator's lines)
    status: Status = Status.INCONCLUSIVE
    estimate: float = 1.0  # factor, > 1 better
    low: float = 0.0
    high: float = math.inf
    round_gains: list[float] = field(default_factory=list)  # per-round gain (log ratio or difference)
    unconfirmed: bool = False  # a first session said better, the confirming one did not
    # Score rules: the aggregate values and their difference (metric units, > 0 better).
    candidate_value: float | None = None
    incumbent_value: float | None = None
    gain: float | None = None
    gain_low: float | None = None
    gain_high: float | None = None


class AcceptanceRule(Protocol):
    """How one kind of objective is measured and decided."""

    rule: Rule
    confirms: bool  # a win must show again in a second, independent session

    async def session(self, candidate: str, incumbent: Incumbent, cases: list[str], *,
                      validation: Evaluation | None = None, decisive: bool = False) -> Session:
        """Measure and decide; decisive: one fixed-length session, no sequential looks (holdout)."""
        ...

    def merge(self, first: Session, second: Session) -> Session:
        """Two sessions as one; better only when the first said so and the second confirmed it."""
        ...

    def per_case(self, session: Session) -> dict[str, CaseComparison]: ...

    def case_wins(self, comparison: CaseComparison) -> bool:
        """Better on this case beyond noise and the minimum gain (a specialist's claim)."""
        ...

    def describe(self, session: Session) -> str:
        """The estimate as the model and the record read it, e.g. "x1.41 [1.37, 1.45]"."""
        ...


def objective_value(objective, cases: dict[str, CaseResult], names: list[str]) -> float | None:
    """One number for a candidate's cases: the geometric mean of times, or the mean of a score."""
    from looplab.acceptance.stats import aggregate_metric

    return aggregate_metric(cases, names, metric=objective.metric, geometric=objective.is_time)


def recorded_results(cases: dict[str, CaseResult], details: dict) -> dict[str, CaseResult]:
    """An attempt's recorded results on search and holdout cases (holdout ones live in its details)."""
    out = dict(cases)
    for name, d in (details.get("holdout_cases") or {}).items():
        out.setdefault(name, CaseResult.from_dict(d))
    return out
