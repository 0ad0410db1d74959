"""The judge: validate a candidate, time it interleaved with the incumbent, and decide.

validate (search cases) → interleaved timing under the machine-wide lock, with sequential looks
→ better beyond noise and min_gain (or best on a case)? → a second, independent session must agree
→ over 10x: validate again with fresh inputs → holdout cases
(validated and timed; wrong there = overfit) → ACCEPTED / SPECIALIST / SLOWER / a failure outcome.
Holdout case names never reach Decision.reason: the reason is shown to the model.
"""

from __future__ import annotations

import math
import secrets
import statistics
from collections.abc import Awaitable
from dataclasses import dataclass, field

from looplab.evaluate import Evaluator
from looplab.experiment import Experiment
from looplab.records import CaseComparison, CaseResult, Decision, Evaluation, Outcome
from looplab.stats import (
    compare_case,
    decision_confidence,
    format_speedup,
    log_gains,
    look_points,
    paired_decision,
)
from looplab.timing_lock import timing_cpu, timing_lock

SUSPICIOUS_SPEEDUP = 10.0  # above this, validate again with fresh inputs and flag it


@dataclass
class Verdict:
    evaluation: Evaluation  # candidate on search cases (samples of all timing rounds)
    decision: Decision
    holdout: Evaluation | None = None  # candidate on holdout cases: keep it out of model-visible text


@dataclass
class Timing:
    """Samples of one interleaved session, per case and round (warm-up sample dropped)."""

    candidate: dict[str, list[list[float]]] = field(default_factory=dict)
    incumbent: dict[str, list[list[float]]] = field(default_factory=dict)
    rounds: int = 0
    failure: Evaluation | None = None  # a run that failed
    failed_side: str = ""  # "candidate" or "incumbent"
    status: str = "inconclusive"
    estimate: float = 1.0
    low: float = 0.0
    high: float = math.inf
    round_gains: list[float] = field(default_factory=list)  # per-round aggregate log speedup
    unconfirmed: bool = False  # a first session said better, the confirming one did not


def _run_samples(ev: Evaluation) -> dict[str, list[float]]:
    # The first sample of a run warms caches and page tables: dropped when enough remain.
    return {c: (r.samples[1:] if len(r.samples) >= 3 else list(r.samples)) for c, r in ev.cases.items()}


def _round_value(values: list[float]) -> float:
    if all(v > 0 for v in values):
        return math.exp(statistics.fmean(math.log(v) for v in values))
    return statistics.fmean(values)


def _series(store: dict[str, list[list[float]]], cases: list[str], rounds: int) -> list[float]:
    """Per round, the aggregate over cases of each case's median for that run."""
    return [_round_value([statistics.median(store[c][r]) for c in cases]) for r in range(rounds)]


async def time_interleaved(evaluator: Evaluator, candidate_source: str, incumbent_source: str,
                           cases: list[str], *, looks: list[int], confidence: float, min_gain: float,
                           sequential: bool = True) -> Timing:
    """A B B A A B ... rounds under the timing lock; stops at a look once the decision is clear.

    sequential=False runs all of looks[-1] rounds and decides once (used for holdout cases).
    """
    direction = evaluator.direction
    conf = decision_confidence(confidence, len(looks))
    t = Timing()
    for source in (candidate_source, incumbent_source):  # build outside the lock: it is not timing
        await evaluator.build(source)
    async with timing_lock():
        cpu = timing_cpu()
        for r in range(looks[-1]):
            seed = secrets.randbelow(2**31)  # same fresh inputs for both sides of a round
            sides = [("incumbent", incumbent_source), ("candidate", candidate_source)]
            for side, source in sides if r % 2 == 0 else sides[::-1]:
                ev = await evaluator.evaluate(source, cases, seed=seed, pin_cpu=cpu)
                if not ev.ok:
                    t.failure, t.failed_side = ev, side
                    return t
                store = t.candidate if side == "candidate" else t.incumbent
                for case, samples in _run_samples(ev).items():
                    store.setdefault(case, []).append(samples)
            t.rounds = r + 1
            if t.rounds in looks and (sequential or t.rounds == looks[-1]):
                names = cases or sorted(set(t.candidate) & set(t.incumbent))
                t.status, t.estimate, t.low, t.high = paired_decision(
                    _series(t.candidate, names, t.rounds), _series(t.incumbent, names, t.rounds),
                    confidence=conf, min_gain=min_gain, direction=direction)
                if t.status != "inconclusive":
                    break
    names = cases or sorted(set(t.candidate) & set(t.incumbent))
    t.round_gains = log_gains(_series(t.candidate, names, t.rounds), _series(t.incumbent, names, t.rounds), direction)
    return t


def merge_sessions(first: Timing, second: Timing, *, confirmed: bool, confidence: float, min_gain: float,
                   direction: str, looks: int) -> Timing:
    """Two sessions as one: every round's samples, the estimate and interval over all rounds, and
    "better" only when the first said so and the second confirmed it."""
    if second.failure is not None:
        return second
    t = Timing(rounds=first.rounds + second.rounds, round_gains=first.round_gains + second.round_gains)
    for mine, theirs, into in ((first.candidate, second.candidate, t.candidate),
                               (first.incumbent, second.incumbent, t.incumbent)):
        for case in mine.keys() | theirs.keys():
            into[case] = mine.get(case, []) + theirs.get(case, [])
    names = sorted(set(t.candidate) & set(t.incumbent))
    status, t.estimate, t.low, t.high = paired_decision(
        _series(t.candidate, names, t.rounds), _series(t.incumbent, names, t.rounds),
        confidence=decision_confidence(confidence, looks), min_gain=min_gain, direction=direction)
    t.status = "better" if first.status == "better" and confirmed else ("worse" if status == "worse" else "inconclusive")
    t.unconfirmed = first.status == "better" and not confirmed
    return t


async def confirmed_timing(evaluator: Evaluator, candidate_source: str, incumbent_source: str, cases: list[str],
                           *, looks: list[int], confidence: float, min_gain: float) -> Timing:
    """The judge's rule for a win on its own (calibrate and benchmarks use it): a session, and when it
    says better, a second one that must agree."""
    t = await time_interleaved(evaluator, candidate_source, incumbent_source, cases, looks=looks,
                               confidence=confidence, min_gain=min_gain)
    if t.failure is None and t.status == "better":
        again = await time_interleaved(evaluator, candidate_source, incumbent_source, cases, looks=looks,
                                       confidence=confidence, min_gain=min_gain)
        t = merge_sessions(t, again, confirmed=again.status == "better", confidence=confidence,
                           min_gain=min_gain, direction=evaluator.direction, looks=len(looks))
    return t


def _with_samples(validation: Evaluation, rounds: dict[str, list[list[float]]]) -> Evaluation:
    cases = {name: CaseResult(case=name, ok=True, samples=[s for r in rounds.get(name, []) for s in r] or res.samples,
                              error=None, metrics=res.metrics) for name, res in validation.cases.items()}
    return Evaluation(ok=True, cases=cases, log=validation.log, seed=validation.seed, wall_s=validation.wall_s)


def _beats(median: float, best: float | None, direction: str) -> bool:
    if best is None:
        return True
    return median < best if direction == "minimize" else median > best


TIME_UNITS = ("ns", "us", "µs", "ms", "s", "cycles")


def _words(direction: str, unit: str) -> tuple[str, str]:
    """A time gets faster or slower; anything else (a score, bytes, an error) better or worse."""
    return ("faster", "slower") if direction == "minimize" and unit in TIME_UNITS else ("better", "worse")


_FAILED_AS = {Outcome.INVALID: "wrong", Outcome.TIMEOUT: "timed out", Outcome.CRASH: "crashed"}


async def _holdout(experiment: Experiment, evaluator: Evaluator, candidate: str, incumbent: str
                   ) -> tuple[Evaluation | None, float | None, Decision | None]:
    """(holdout evaluation, holdout speedup, a Decision when it fails there)."""
    cases = evaluator.holdout_cases
    if not cases:
        return None, None, None
    obj = experiment.config.objective
    t = await time_interleaved(evaluator, candidate, incumbent, cases, looks=[max(obj.rounds, 2)],
                               confidence=obj.confidence, min_gain=obj.min_gain, sequential=False)
    if t.failure is not None:
        if t.failed_side == "incumbent":
            return t.failure, None, Decision(Outcome.INFRA_ERROR, "the incumbent failed on a hidden holdout case")
        how = _FAILED_AS.get(t.failure.failure or Outcome.CRASH, "failed")
        return t.failure, None, Decision(Outcome.OVERFIT, f"right on the search cases but {how} on a hidden holdout case")
    ev = Evaluation(ok=True, cases={c: CaseResult(case=c, ok=True, samples=[s for r in t.candidate[c] for s in r])
                                    for c in cases})
    return ev, t.estimate, None


async def judge(experiment: Experiment, evaluator: Evaluator, *, candidate_source: str, incumbent_source: str,
                best_case_medians: dict[str, float]) -> Verdict:
    obj = experiment.config.objective
    cases = evaluator.search_cases
    validation = await evaluator.evaluate(candidate_source, cases)
    if not validation.ok:
        return Verdict(validation, Decision(validation.failure or Outcome.CRASH, validation.reason))
    looks = look_points(obj.rounds, obj.max_rounds)
    direction = evaluator.direction

    def session() -> Awaitable[Timing]:
        return time_interleaved(evaluator, candidate_source, incumbent_source, cases, looks=looks,
                                confidence=obj.confidence, min_gain=obj.min_gain)

    def compared(t: Timing) -> dict[str, CaseComparison]:
        case_conf = decision_confidence(obj.confidence, len(looks), max(len(t.candidate), 1))
        return {c: compare_case(t.candidate[c], t.incumbent[c], confidence=case_conf, direction=direction, case=c)
                for c in sorted(t.candidate)}

    def best_in(comparisons: dict[str, CaseComparison]) -> list[str]:
        return [c for c, cmp in comparisons.items()
                if cmp.ci_low > 1.0 + obj.min_gain and _beats(cmp.candidate_median, best_case_medians.get(c), direction)]

    t = await session()
    comparisons = compared(t) if t.failure is None else {}
    best = best_in(comparisons)
    if t.failure is None and (t.status == "better" or best):
        # A win must show twice: bursts of other work on a shared machine fake one now and then.
        again = await session()
        best = [c for c in best if again.failure is None and c in best_in(compared(again))]
        t = merge_sessions(t, again, confirmed=again.status == "better", confidence=obj.confidence,
                           min_gain=obj.min_gain, direction=direction, looks=len(looks))
        comparisons = compared(t) if t.failure is None else {}  # over both sessions, for the record
    if t.failure is not None:
        if t.failed_side == "incumbent":
            reason = f"the incumbent failed while timing: {t.failure.reason}"
            return Verdict(validation, Decision(Outcome.INFRA_ERROR, reason))
        reason = f"on a re-run with fresh inputs: {t.failure.reason}"
        return Verdict(t.failure, Decision(t.failure.failure or Outcome.CRASH, reason))
    evaluation = _with_samples(validation, t.candidate)
    decision = Decision(Outcome.SLOWER, "", speedup=t.estimate, ci_low=t.low, ci_high=t.high,
                        cases=comparisons, rounds=t.rounds)
    shown = format_speedup(t.estimate, t.low, t.high)
    flag = ""
    if t.status == "better" and t.estimate > SUSPICIOUS_SPEEDUP:
        again = await evaluator.evaluate(candidate_source, cases)
        if not again.ok:
            decision.outcome = again.failure or Outcome.INVALID
            decision.reason = f"{shown} is suspicious (over 10x) and failed a second validation: {again.reason}"
            return Verdict(again, decision)
        flag = " (over 10x: re-validated with fresh inputs)"
        decision.revalidated = True
    if t.status == "better" or best:
        holdout, holdout_speedup, failed = await _holdout(experiment, evaluator, candidate_source, incumbent_source)
        if failed is not None:
            failed.speedup, failed.ci_low, failed.ci_high = t.estimate, t.low, t.high
            failed.cases, failed.rounds = comparisons, t.rounds
            return Verdict(evaluation, failed, holdout)
        decision.holdout_speedup = holdout_speedup
        gap = "" if holdout_speedup is None else f"; holdout x{holdout_speedup:.2f}"
        decision.best_cases = best
        if t.status == "better":
            decision.outcome = Outcome.ACCEPTED
            decision.reason = f"{shown} {_words(direction, obj.unit)[0]} over {t.rounds} rounds{flag}{gap}"
        else:
            decision.outcome = Outcome.SPECIALIST
            on = ", ".join(f"{c} {format_speedup(comparisons[c].speedup, comparisons[c].ci_low, comparisons[c].ci_high)}"
                           for c in best)
            decision.reason = f"best on {on}; overall {shown} not better{gap}"
        return Verdict(evaluation, decision, holdout)
    if t.unconfirmed:
        decision.reason = (f"{shown} over {t.rounds} rounds: {_words(direction, obj.unit)[0]} in a first session, "
                           "not confirmed by a second")
    elif t.high < 1.0:
        decision.reason = f"{shown} {_words(direction, obj.unit)[1]}"
    elif t.high < 1.0 + obj.min_gain:
        decision.reason = f"{shown} no gain above min_gain {obj.min_gain:.0%}"
    else:
        decision.reason = f"{shown} within noise after {t.rounds} rounds"
    return Verdict(evaluation, decision)
