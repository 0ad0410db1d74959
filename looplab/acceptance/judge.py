"""The judge: validate a candidate, measure it against the incumbent under the objective's acceptance
rule, and decide.

validate (search cases) → a session of the rule (timing, deterministic or noisy score) → better beyond
noise and min_gain (or best on a case)? → a second, independent session must agree → over 10x:
validate again with fresh inputs → holdout cases (measured; wrong there = overfit)
→ ACCEPTED / SPECIALIST / SLOWER / a failure outcome. Every decision records its rule.
Holdout case names never reach Decision.reason: the reason is shown to the model.
"""

from __future__ import annotations

from dataclasses import dataclass

from looplab.acceptance import AcceptanceRule, Incumbent, Rule, Session
from looplab.acceptance.choose import rule_for
from looplab.acceptance.stats import Status
from looplab.config import TIME_UNITS, Experiment
from looplab.executors import Executor
from looplab.records import CaseComparison, CaseResult, Decision, Evaluation, Outcome

SUSPICIOUS_SPEEDUP = 10.0  # above this, validate again with fresh inputs and flag it


@dataclass
class Verdict:
    evaluation: Evaluation  # candidate on search cases (samples of all rounds)
    decision: Decision
    holdout: Evaluation | None = None  # candidate on holdout cases: keep it out of model-visible text


async def confirmed_session(rule: AcceptanceRule, candidate: str, incumbent: Incumbent, cases: list[str]) -> Session:
    """The rule's verdict on a win on its own (calibrate and benchmarks use it): a session, and when it
    says better, a second one that must agree."""
    s = await rule.session(candidate, incumbent, cases)
    if s.failure is None and s.status == Status.BETTER and rule.confirms:
        s = rule.merge(s, await rule.session(candidate, incumbent, cases))
    return s


def _with_samples(validation: Evaluation, rounds: dict[str, list[list[float]]], timed: bool) -> Evaluation:
    """The validation run, carrying every timing round's samples (a score keeps its own values)."""
    if not timed:
        return validation
    cases = {name: CaseResult(case=name, ok=True, samples=[s for r in rounds.get(name, []) for s in r] or res.samples,
                              error=None, metrics=res.metrics) for name, res in validation.cases.items()}
    return Evaluation(ok=True, cases=cases, log=validation.log, seed=validation.seed, wall_s=validation.wall_s)


def _beats(value: float, best: float | None, direction: str) -> bool:
    if best is None:
        return True
    return value < best if direction == "minimize" else value > best


def _words(direction: str, unit: str) -> tuple[str, str]:
    """A time gets faster or slower; anything else (a score, bytes, an error) better or worse."""
    return ("faster", "slower") if direction == "minimize" and unit in TIME_UNITS else ("better", "worse")


_FAILED_AS = {Outcome.INVALID: "wrong", Outcome.TIMEOUT: "timed out", Outcome.CRASH: "crashed"}


async def _holdout(evaluator: Executor, rule: AcceptanceRule, candidate: str, incumbent: Incumbent
                   ) -> tuple[Evaluation | None, float | None, Decision | None]:
    """(holdout evaluation, holdout factor, a Decision when it fails there)."""
    cases = evaluator.holdout_cases
    if not cases:
        return None, None, None
    s = await rule.session(candidate, incumbent, cases, decisive=True)
    if s.failure is not None:
        if s.failed_side in ("incumbent", "judge"):
            return s.failure, None, Decision(Outcome.INFRA_ERROR, f"the {s.failed_side} failed on a hidden holdout case")
        if s.failure.failure == Outcome.OVERFIT:  # the rule found it worse there (a judged objective)
            return s.failure, s.estimate, Decision(Outcome.OVERFIT, s.failure.reason)
        how = _FAILED_AS.get(s.failure.failure or Outcome.CRASH, "failed")
        return s.failure, None, Decision(Outcome.OVERFIT, f"right on the search cases but {how} on a hidden holdout case")
    ev = Evaluation(ok=True, cases={c: CaseResult(case=c, ok=True, samples=[x for r in s.candidate[c] for x in r])
                                    for c in cases if c in s.candidate})
    return ev, s.estimate, None


def _record(decision: Decision, rule: AcceptanceRule, s: Session, comparisons: dict[str, CaseComparison]) -> None:
    decision.rule = rule.rule.value
    decision.speedup, decision.ci_low, decision.ci_high = s.estimate, s.low, s.high
    decision.gain, decision.gain_low, decision.gain_high = s.gain, s.gain_low, s.gain_high
    decision.candidate_value, decision.incumbent_value = s.candidate_value, s.incumbent_value
    decision.cases, decision.rounds = comparisons, s.rounds


async def judge(experiment: Experiment, evaluator: Executor, *, candidate_source: str, incumbent_source: str,
                best_case_medians: dict[str, float], incumbent_cases: dict[str, CaseResult] | None = None,
                noise: str | None = None) -> Verdict:
    """incumbent_cases: its recorded results (a deterministic score reuses them); noise: what the
    baseline showed ("deterministic"/"noisy"), for score objectives set to noise = "auto"."""
    obj = experiment.config.objective
    rule = rule_for(experiment, evaluator, noise)
    incumbent = Incumbent(incumbent_source, dict(incumbent_cases or {}))
    cases = evaluator.search_cases
    validation = await evaluator.evaluate(candidate_source, cases)
    if not validation.ok:
        return Verdict(validation, Decision(validation.failure or Outcome.CRASH, validation.reason, rule=rule.rule.value))
    direction = evaluator.direction

    def best_in(comparisons: dict[str, CaseComparison]) -> list[str]:
        return [c for c, cmp in comparisons.items()
                if rule.case_wins(cmp) and _beats(cmp.candidate_median, best_case_medians.get(c), direction)]

    s = await rule.session(candidate_source, incumbent, cases, validation=validation)
    comparisons = rule.per_case(s) if s.failure is None else {}
    best = best_in(comparisons)
    if s.failure is None and (s.status == Status.BETTER or best) and rule.confirms:
        # A win must show twice: bursts of other work on a shared machine fake one now and then.
        again = await rule.session(candidate_source, incumbent, cases)
        best = [c for c in best if again.failure is None and c in best_in(rule.per_case(again))]
        s = rule.merge(s, again)
        comparisons = rule.per_case(s) if s.failure is None else {}  # over both sessions, for the record
        best = [c for c in best if c in best_in(comparisons)]  # and a case's win must hold over both
    if s.failure is not None:
        if s.failed_side in ("incumbent", "judge"):
            reason = f"the incumbent failed while measuring: {s.failure.reason}" if s.failed_side == "incumbent" \
                else s.failure.reason
            return Verdict(validation, Decision(Outcome.INFRA_ERROR, reason, rule=rule.rule.value))
        reason = f"on a re-run with fresh inputs: {s.failure.reason}"
        return Verdict(s.failure, Decision(s.failure.failure or Outcome.CRASH, reason, rule=rule.rule.value))
    evaluation = _with_samples(validation, s.candidate, timed=obj.is_time)
    decision = Decision(Outcome.SLOWER, "")
    _record(decision, rule, s, comparisons)
    shown = rule.describe(s)
    better, worse = _words(direction, obj.unit)
    flag = ""
    if s.status == Status.BETTER and s.estimate > getattr(rule, "suspicious_above", SUSPICIOUS_SPEEDUP):
        again = await evaluator.evaluate(candidate_source, cases)
        if not again.ok:
            decision.outcome = again.failure or Outcome.INVALID
            decision.reason = f"{shown} is suspicious (over 10x) and failed a second validation: {again.reason}"
            return Verdict(again, decision)
        flag = " (over 10x: re-validated with fresh inputs)"
        decision.revalidated = True
    if s.status == Status.BETTER or best:
        holdout, holdout_factor, failed = await _holdout(evaluator, rule, candidate_source, incumbent)
        if failed is not None:
            _record(failed, rule, s, comparisons)
            failed.holdout_speedup = holdout_factor
            return Verdict(evaluation, failed, holdout)
        decision.holdout_speedup = holdout_factor
        gap = "" if holdout_factor is None else f"; holdout x{holdout_factor:.2f}"
        decision.best_cases = best
        rounds = f" over {s.rounds} rounds" if s.rounds > 1 else ""
        if s.status == Status.BETTER:
            decision.outcome = Outcome.ACCEPTED
            decision.reason = f"{shown} {better}{rounds}{flag}{gap}"
        else:
            decision.outcome = Outcome.SPECIALIST
            on = ", ".join(f"{c} x{comparisons[c].speedup:.2f} [{comparisons[c].ci_low:.2f}, {comparisons[c].ci_high:.2f}]"
                           for c in best)
            decision.reason = f"best on {on}; overall {shown} not {better}{gap}"
        return Verdict(evaluation, decision, holdout)
    decision.reason = _why_not(s, shown, better, worse, obj.min_gain or 0.0, obj.is_time,
                               reproduced=rule.rule == Rule.DETERMINISTIC_SCORE)
    return Verdict(evaluation, decision)


def _why_not(s: Session, shown: str, better: str, worse: str, min_gain: float, timed: bool, *,
             reproduced: bool = False) -> str:
    """reproduced: the rule confirms by evaluating the candidate again (a deterministic score)."""
    if s.unconfirmed:
        if reproduced:
            return f"{shown}: {better} once, but its score changed when evaluated again (not deterministic)"
        return f"{shown} over {s.rounds} rounds: {better} in a first session, not confirmed by a second"
    if s.high < 1.0 or (s.gain_high is not None and s.gain_high < 0):
        return f"{shown} {worse}"
    if s.gain is not None and s.gain == 0 and s.gain_low == s.gain_high:
        return f"{shown}: equal, not {better}"
    if s.high < 1.0 + min_gain or (s.gain is not None and s.status == Status.WORSE):
        return f"{shown} no gain above the minimum ({'min_gain ' + format(min_gain, '.0%') if timed else 'min_gain'})"
    return f"{shown} within noise after {s.rounds} rounds"
