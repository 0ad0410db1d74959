"""Paired, interleaved rounds of candidate and incumbent: the engine of the timing and noisy-score rules.

A B B A A B ...: each round runs both on the same fresh inputs, so round-level effects (where the
process landed, what else the machine did) are shared by the pair. Decisions are taken at looks
(sequential testing) with the false-acceptance budget split over them (stats.decision_confidence).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from looplab.acceptance import Session
from looplab.acceptance.stats import Status, decision_confidence
from looplab.executors import Executor
from looplab.records import Evaluation
from looplab.sandbox.timing_lock import timing_lock

# (candidate series, incumbent series, decision confidence) -> (status, estimate, low, high)
Decide = Callable[[list[float], list[float], float], tuple[Status, float, float, float]]


@dataclass(frozen=True)
class Plan:
    looks: list[int]  # round counts at which the decision is looked at
    confidence: float  # the experiment's; each look decides at decision_confidence(confidence, looks)
    decide: Decide
    values: Callable[[Evaluation], dict[str, list[float]]]  # one run's values per case
    aggregate: Callable[[list[float]], float]  # per round: the cases' values as one
    timed: bool  # hold the machine-wide timing lock; each run is a timing run (a pinned core)


def series(store: dict[str, list[list[float]]], cases: list[str], rounds: int,
           aggregate: Callable[[list[float]], float]) -> list[float]:
    """Per round, the aggregate over cases of each case's median for that run."""
    return [aggregate([statistics.median(store[c][r]) for c in cases]) for r in range(rounds)]


def decide_over(plan: Plan, s: Session, looks: int) -> tuple[Status, float, float, float]:
    names = sorted(set(s.candidate) & set(s.incumbent))
    return plan.decide(series(s.candidate, names, s.rounds, plan.aggregate),
                       series(s.incumbent, names, s.rounds, plan.aggregate),
                       decision_confidence(plan.confidence, looks))


async def interleaved(evaluator: Executor, candidate: str, incumbent: str, cases: list[str], plan: Plan, *,
                      sequential: bool = True) -> Session:
    """Rounds until a look decides, or all of plan.looks[-1] rounds when not sequential."""
    s = Session()
    for source in (candidate, incumbent):  # build outside the lock: building is not timing
        await evaluator.build(source)
    async with (timing_lock() if plan.timed else contextlib.nullcontext()):
        for r in range(plan.looks[-1]):
            seed = secrets.randbelow(2**31)  # same inputs for both sides of a round, where the harness takes one
            sides = [("incumbent", incumbent), ("candidate", candidate)]
            order = sides if r % 2 == 0 else sides[::-1]
            for (side, _), ev in zip(order, await _round(evaluator, order, cases, seed, plan.timed), strict=True):
                if not ev.ok:
                    s.failure, s.failed_side = ev, side
                    return s
                into = s.candidate if side == "candidate" else s.incumbent
                for case, values in plan.values(ev).items():
                    into.setdefault(case, []).append(values)
            s.rounds = r + 1
            if s.rounds in plan.looks and (sequential or s.rounds == plan.looks[-1]):
                s.status, s.estimate, s.low, s.high = decide_over(plan, s, len(plan.looks))
                if s.status != Status.INCONCLUSIVE:
                    break
    return s


async def _round(evaluator: Executor, order: list[tuple[str, str]], cases: list[str], seed: int,
                 timed: bool) -> list[Evaluation]:
    """Both sides of one round: one after the other when timed (a quiet machine, a pinned core), else at
    once — a score does not depend on what else runs, and a round takes the time of its slower side."""
    if timed:
        return [await evaluator.evaluate(source, cases, seed=seed, timed=True) for _, source in order]
    return list(await asyncio.gather(*(evaluator.evaluate(source, cases, seed=seed) for _, source in order)))


def merge(plan: Plan, first: Session, second: Session) -> Session:
    """Every round of both sessions, decided over all of them; better only when both said so."""
    if second.failure is not None:
        return second
    s = Session(rounds=first.rounds + second.rounds, round_gains=first.round_gains + second.round_gains)
    for mine, theirs, into in ((first.candidate, second.candidate, s.candidate),
                               (first.incumbent, second.incumbent, s.incumbent)):
        for case in mine.keys() | theirs.keys():
            into[case] = mine.get(case, []) + theirs.get(case, [])
    status, s.estimate, s.low, s.high = decide_over(plan, s, len(plan.looks))
    confirmed = first.status == Status.BETTER and second.status == Status.BETTER
    s.status = Status.BETTER if confirmed else (Status.WORSE if status == Status.WORSE else Status.INCONCLUSIVE)
    s.unconfirmed = first.status == Status.BETTER and not confirmed
    return s
