"""The judged rule: a model compares outputs, and acceptance counts per-case wins against losses.

Each round runs the candidate and the incumbent on the same fresh inputs (one seed for both: a judged
evaluator draws its inputs from {seed}) and the judge model compares their outputs case by case, in both
orders (pairwise.py). Ties, order-dependent verdicts and identical outputs count for neither side. The
candidate is better when a one-sided sign test of wins against losses (the exact Clopper-Pearson bound
of its win share) clears min_gain at the look's level: the same false-acceptance budget as every rule,
split over the sequential looks. A win must show again in a second session whose own, new comparisons
decide: a comparison seen before (same input, same two outputs) is never counted twice, so a second
session on the same inputs cannot confirm anything. The holdout session fails, as overfit, when the
candidate loses more hidden comparisons than it wins.

As a factor: x = (wins + ½) / (losses + ½), the odds of a win over a loss, with the win share's interval.
No specialists: one case's few verdicts are too thin to claim a case.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field

from looplab.acceptance import Incumbent, Rule, Session
from looplab.acceptance.pairwise import Comparison, JudgeError, PairJudge
from looplab.acceptance.stats import Status, decision_confidence, look_points
from looplab.config import ObjectiveConfig
from looplab.executors import Executor
from looplab.records import CaseComparison, CaseResult, Evaluation, Outcome


@dataclass
class JudgedSession(Session):
    comparisons: list[Comparison] = field(default_factory=list)  # one per distinct key, in order
    budget_spent: bool = False  # judging stopped: --budget-usd is used up


def counts(comparisons: list[Comparison]) -> dict[str, int]:
    out = {"win": 0, "loss": 0, "tie": 0, "flip": 0, "split": 0, "unread": 0, "same": 0, "unjudged": 0}
    for c in comparisons:
        out[c.verdict] += 1
    return out


def _tail_at_least(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space."""
    if k <= 0 or p >= 1.0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    lp, lq, top = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    logs = [top - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq for i in range(k, n + 1)]
    m = max(logs)
    return min(1.0, math.exp(m) * sum(math.exp(v - m) for v in logs))


def _solve(f, target: float) -> float:
    """p in [0, 1] with f(p) = target, for f increasing in p."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) < target else (lo, mid)
    return 0.5 * (lo + hi)


def win_share_bounds(wins: int, n: int, alpha: float) -> tuple[float, float]:
    """Clopper-Pearson bounds of the win share, each one-sided at alpha: low > ½ exactly when the sign
    test rejects "no better" at alpha."""
    low = 0.0 if wins == 0 else _solve(lambda p: _tail_at_least(wins, n, p), alpha)
    high = 1.0 if wins == n else _solve(lambda p: _tail_at_least(wins + 1, n, p), 1.0 - alpha)
    return low, high


def decide(wins: int, losses: int, level: float, min_gain: float) -> tuple[Status, float, float, float]:
    """(status, odds estimate, low, high); level: the two-sided level of stats.decision_confidence."""
    n = wins + losses
    if n == 0:  # nothing told them apart: no evidence, and none is coming from more of the same
        return Status.WORSE, 1.0, 0.0, math.inf
    p_low, p_high = win_share_bounds(wins, n, (1.0 - level) / 2.0)
    estimate = (wins + 0.5) / (losses + 0.5)
    low = p_low / (1.0 - p_low)
    high = math.inf if p_high >= 1.0 else p_high / (1.0 - p_high)
    if low > 1.0 + min_gain:
        return Status.BETTER, estimate, low, high
    if estimate <= 1.0 or high < 1.0 + min_gain:
        return Status.WORSE, estimate, low, high
    return Status.INCONCLUSIVE, estimate, low, high


def _unique(comparisons: list[Comparison]) -> list[Comparison]:
    seen: set[str] = set()
    out = []
    for c in comparisons:
        if c.key not in seen:
            seen.add(c.key)
            out.append(c)
    return out


def describe_counts(comparisons: list[Comparison]) -> str:
    """"14 wins, 2 losses, 4 ties (3 order-dependent, 1 identical)" """
    n = counts(comparisons)
    ties = sum(n.values()) - n["win"] - n["loss"]
    notes = [f"{n['flip'] + n['split']} order-dependent" if n["flip"] + n["split"] else "",
             f"{n['unread']} unreadable" if n["unread"] else "",
             f"{n['same']} identical" if n["same"] else "", f"{n['unjudged']} unjudged" if n["unjudged"] else ""]
    note = ", ".join(x for x in notes if x)
    return (f"{n['win']} win{'s' * (n['win'] != 1)}, {n['loss']} loss{'es' * (n['loss'] != 1)}, "
            f"{ties} tie{'s' * (ties != 1)}" + (f" ({note})" if note else ""))


class JudgedRule:
    rule = Rule.JUDGED
    confirms = True
    suspicious_above = math.inf  # odds of x10 are common (20 wins, 1 loss): no "too fast to be true" here

    def __init__(self, evaluator: Executor, objective: ObjectiveConfig, judge: PairJudge):
        self.evaluator, self.objective, self.judge = evaluator, objective, judge
        self.looks = look_points(objective.rounds, objective.max_rounds)

    def _level(self, comparisons: int = 1) -> float:
        return decision_confidence(self.objective.confidence, len(self.looks), comparisons)

    def _decide(self, comparisons: list[Comparison], level: float) -> tuple[Status, float, float, float]:
        n = counts(comparisons)
        return decide(n["win"], n["loss"], level, self.objective.min_gain or 0.0)

    async def session(self, candidate: str, incumbent: Incumbent, cases: list[str], *,
                      validation: Evaluation | None = None, decisive: bool = False) -> Session:
        looks = [max(self.objective.rounds, 1)] if decisive else self.looks
        s = JudgedSession()
        for r in range(looks[-1]):
            reuse = (r == 0 and validation is not None and validation.ok and validation.seed is not None
                     and all(c in validation.cases for c in cases))
            seed = validation.seed if reuse and validation is not None else secrets.randbelow(2**31)
            cand = validation if reuse and validation is not None else \
                await self.evaluator.evaluate(candidate, cases, seed=seed)
            if not cand.ok:
                s.failure, s.failed_side = cand, "candidate"
                return s
            inc = await self.evaluator.evaluate(incumbent.source, cases, seed=seed)
            if not inc.ok:
                s.failure, s.failed_side = inc, "incumbent"
                return s
            triples, problem = _triples(cases, inc, cand)
            if problem:
                s.failure, s.failed_side = Evaluation(ok=False, failure=Outcome.INFRA_ERROR, reason=problem), "judge"
                return s
            try:
                found = await self.judge.compare_all(triples)
            except JudgeError as e:
                reason = f"the judge failed: {e}"
                s.failure, s.failed_side = Evaluation(ok=False, failure=Outcome.INFRA_ERROR, reason=reason), "judge"
                return s
            s.comparisons = _unique(s.comparisons + found)
            s.rounds = r + 1
            s.budget_spent = any(c.verdict == "unjudged" for c in found)
            if s.budget_spent or (s.rounds in looks and (not decisive or s.rounds == looks[-1])):
                s.status, s.estimate, s.low, s.high = self._decide(s.comparisons, self._level())
                if s.status != Status.INCONCLUSIVE or s.budget_spent:
                    break
        if s.budget_spent and s.status == Status.BETTER:
            s.status = Status.INCONCLUSIVE  # a win half judged is no win
        _mark_identical(s)
        if decisive:
            n = counts(s.comparisons)
            if n["loss"] > n["win"]:
                reason = (f"better on the search cases but judged worse on the hidden holdout cases: "
                          f"{describe_counts(s.comparisons)}")
                s.failure, s.failed_side = Evaluation(ok=False, failure=Outcome.OVERFIT, reason=reason), "candidate"
        return s

    def merge(self, first: Session, second: Session) -> Session:
        if second.failure is not None:
            return second
        a = first.comparisons if isinstance(first, JudgedSession) else []
        b = second.comparisons if isinstance(second, JudgedSession) else []
        seen = {c.key for c in a}
        fresh = [c for c in b if c.key not in seen]
        s = JudgedSession(rounds=first.rounds + second.rounds, comparisons=a + fresh,
                          budget_spent=getattr(first, "budget_spent", False) or getattr(second, "budget_spent", False))
        again = self._decide(fresh, self._level())[0]  # only what the second session saw that the first did not
        status, s.estimate, s.low, s.high = self._decide(s.comparisons, self._level())
        confirmed = first.status == Status.BETTER and again == Status.BETTER and not s.budget_spent
        s.status = Status.BETTER if confirmed else (Status.WORSE if status == Status.WORSE else Status.INCONCLUSIVE)
        s.unconfirmed = first.status == Status.BETTER and not confirmed
        _mark_identical(s)
        return s

    def per_case(self, session: Session) -> dict[str, CaseComparison]:
        """Per case: the odds of a win and its interval; candidate_median / incumbent_median hold the case's
        wins / losses (a judged case has no measured value)."""
        comparisons = session.comparisons if isinstance(session, JudgedSession) else []
        names = list(dict.fromkeys(c.case for c in comparisons))
        out = {}
        for name in names:
            mine = [c for c in comparisons if c.case == name]
            n = counts(mine)
            _, est, low, high = self._decide(mine, self._level(len(names)))
            out[name] = CaseComparison(case=name, speedup=est, ci_low=low, ci_high=high, candidate_median=n["win"],
                                       incumbent_median=n["loss"], rounds=len(mine))
        return out

    def case_wins(self, comparison: CaseComparison) -> bool:
        return False

    def describe(self, session: Session) -> str:
        comparisons = session.comparisons if isinstance(session, JudgedSession) else []
        spent = "; judging stopped: the budget is spent" if getattr(session, "budget_spent", False) else ""
        high = "inf" if math.isinf(session.high) else f"{session.high:.2f}"
        return (f"{describe_counts(comparisons)} over {len(comparisons)} comparisons: "
                f"x{session.estimate:.2f} [{session.low:.2f}, {high}]{spent}")


def _mark_identical(s: JudgedSession) -> None:
    """Every output the same as the incumbent's: a difference of exactly zero (the record says "equal")."""
    if s.comparisons and all(c.verdict == "same" for c in s.comparisons):
        s.gain = s.gain_low = s.gain_high = 0.0


def _output(case: CaseResult) -> tuple[bool, object]:
    return "output" in case.metrics, case.metrics.get("output")


def _triples(cases: list[str], inc: Evaluation, cand: Evaluation) -> tuple[list[tuple[str, object, object, object]], str]:
    """(case, input, incumbent output, candidate output) per case, or why the evaluator's lines cannot be judged."""
    out = []
    for name in cases:
        i, c = inc.cases.get(name), cand.cases.get(name)
        if i is None or c is None:
            return [], f"the evaluator reported no line for case {name}"
        (has_i, out_i), (has_c, out_c) = _output(i), _output(c)
        if not (has_i and has_c):
            return [], (f'the evaluator\'s line for case {name} has no "output" (a judged objective compares '
                        "each case's output: print it in the case's line)")
        if i.metrics.get("input") != c.metrics.get("input"):
            return [], (f"case {name} got different inputs for the candidate and the incumbent with the same seed "
                        "(a judged evaluator must draw its inputs from {seed})")
        out.append((name, i.metrics.get("input"), out_i, out_c))
    return out, ""


async def calibrate(rule: JudgedRule, source: str, incumbent: Incumbent, cases: list[str], trials: int) -> dict:
    """`looplab calibrate` for a judged objective: the incumbent against itself, `trials` times, through the
    whole rule (sessions, looks, confirmation). Any win is false here: the false-acceptance rate counts the
    trials accepted, the false-win rate the comparisons the same program won against itself; the
    order-flip rate is the share of judged comparisons whose verdict changed with the order."""
    from looplab.acceptance.judge import confirmed_session
    from looplab.errors import UserError

    tally = rule.judge.tally
    calls, usage, failed, unreadable = tally.calls, tally.usage, tally.failed_calls, tally.unreadable
    accepted, rounds, seen = 0, [], []
    for _ in range(trials):
        t = await confirmed_session(rule, source, incumbent, cases)
        if t.failure is not None:
            raise UserError(f"calibrate: the incumbent against itself failed: {t.failure.reason} "
                            "(fix: repair the baseline, the harness or the judge's settings)")
        accepted += t.status == Status.BETTER
        rounds.append(t.rounds)
        seen += t.comparisons if isinstance(t, JudgedSession) else []
    n = counts(seen)
    judged = n["win"] + n["loss"] + n["tie"] + n["flip"] + n["split"] + n["unread"]
    spent = tally.usage.cost_usd is None or usage.cost_usd is None
    level = rule._level()
    need = next(k for k in range(1, 10_000) if decide(k, 0, level, rule.objective.min_gain or 0.0)[0] == Status.BETTER)
    return {
        "rule": rule.rule.value,
        "judge": rule.judge.name,
        "trials": trials,
        "false_accept_rate": accepted / trials,
        "false_accepts": accepted,
        "comparisons": len(seen),
        "judged_comparisons": judged,
        "identical_comparisons": n["same"],
        "false_win_rate": n["win"] / judged if judged else None,
        "false_loss_rate": n["loss"] / judged if judged else None,
        "order_flip_rate": (n["flip"] + n["split"]) / judged if judged else None,
        "verdicts": n,
        "wins_needed": need,  # decided comparisons, all wins, that accept at one look
        "judge_calls": tally.calls - calls,
        "judge_failed_calls": tally.failed_calls - failed,
        "unreadable_rate": (tally.unreadable - unreadable) / (tally.calls - calls) if tally.calls > calls else None,
        "judge_tokens": (tally.usage.total_tokens - usage.total_tokens),
        "judge_cost_usd": None if spent else (tally.usage.cost_usd or 0.0) - (usage.cost_usd or 0.0),
        "mean_rounds": sum(rounds) / len(rounds),
        "rounds": rule.objective.rounds,
        "max_rounds": rule.objective.max_rounds,
        "confidence": rule.objective.confidence,
        "min_gain": rule.objective.min_gain,
    }


def calibration_lines(name: str, r: dict) -> list[str]:
    """calibrate()'s result as `looplab calibrate` prints it."""
    def rate(x: float | None) -> str:
        return "n/a (no comparison reached the judge)" if x is None else f"{x:.3f}"

    cost = "unknown" if r["judge_cost_usd"] is None else f"${r['judge_cost_usd']:.4f}"
    return [f"{name}: {r['trials']} trials of the incumbent against itself, judged by {r['judge']}",
            f"  false-acceptance rate: {r['false_accept_rate']:.3f} ({r['false_accepts']} of {r['trials']} trials)",
            f"  false-win rate: {rate(r['false_win_rate'])} of {r['judged_comparisons']} judged comparisons "
            f"({r['identical_comparisons']} more had identical outputs: ties without a call)",
            f"  order-flip rate: {rate(r['order_flip_rate'])}",
            f"  unreadable replies: {rate(r['unreadable_rate'])} of the judge's replies held no verdict (a tie)",
            f"  judge: {r['judge_calls']} calls, {r['judge_tokens']} tokens, cost {cost}"]
